// Original file: proto/florence2/v1/florence2.proto

import type { CaptionResponse as _florence2_v1_CaptionResponse, CaptionResponse__Output as _florence2_v1_CaptionResponse__Output } from '../../florence2/v1/CaptionResponse';
import type { DetectResponse as _florence2_v1_DetectResponse, DetectResponse__Output as _florence2_v1_DetectResponse__Output } from '../../florence2/v1/DetectResponse';
import type { OpenVocabularyResponse as _florence2_v1_OpenVocabularyResponse, OpenVocabularyResponse__Output as _florence2_v1_OpenVocabularyResponse__Output } from '../../florence2/v1/OpenVocabularyResponse';
import type { SegmentResponse as _florence2_v1_SegmentResponse, SegmentResponse__Output as _florence2_v1_SegmentResponse__Output } from '../../florence2/v1/SegmentResponse';
import type { OcrResponse as _florence2_v1_OcrResponse, OcrResponse__Output as _florence2_v1_OcrResponse__Output } from '../../florence2/v1/OcrResponse';
import type { RegionResponse as _florence2_v1_RegionResponse, RegionResponse__Output as _florence2_v1_RegionResponse__Output } from '../../florence2/v1/RegionResponse';

export interface RunResponse {
  'caption'?: (_florence2_v1_CaptionResponse | null);
  'detect'?: (_florence2_v1_DetectResponse | null);
  'open_vocabulary'?: (_florence2_v1_OpenVocabularyResponse | null);
  'phrase_grounding'?: (_florence2_v1_DetectResponse | null);
  'segment'?: (_florence2_v1_SegmentResponse | null);
  'ocr'?: (_florence2_v1_OcrResponse | null);
  'region'?: (_florence2_v1_RegionResponse | null);
  'result'?: "caption"|"detect"|"open_vocabulary"|"phrase_grounding"|"segment"|"ocr"|"region";
}

export interface RunResponse__Output {
  'caption'?: (_florence2_v1_CaptionResponse__Output | null);
  'detect'?: (_florence2_v1_DetectResponse__Output | null);
  'open_vocabulary'?: (_florence2_v1_OpenVocabularyResponse__Output | null);
  'phrase_grounding'?: (_florence2_v1_DetectResponse__Output | null);
  'segment'?: (_florence2_v1_SegmentResponse__Output | null);
  'ocr'?: (_florence2_v1_OcrResponse__Output | null);
  'region'?: (_florence2_v1_RegionResponse__Output | null);
  'result'?: "caption"|"detect"|"open_vocabulary"|"phrase_grounding"|"segment"|"ocr"|"region";
}
