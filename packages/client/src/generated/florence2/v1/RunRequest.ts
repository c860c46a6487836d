// Original file: proto/florence2/v1/florence2.proto

import type { CaptionRequest as _florence2_v1_CaptionRequest, CaptionRequest__Output as _florence2_v1_CaptionRequest__Output } from '../../florence2/v1/CaptionRequest';
import type { DetectRequest as _florence2_v1_DetectRequest, DetectRequest__Output as _florence2_v1_DetectRequest__Output } from '../../florence2/v1/DetectRequest';
import type { OpenVocabularyRequest as _florence2_v1_OpenVocabularyRequest, OpenVocabularyRequest__Output as _florence2_v1_OpenVocabularyRequest__Output } from '../../florence2/v1/OpenVocabularyRequest';
import type { PhraseGroundingRequest as _florence2_v1_PhraseGroundingRequest, PhraseGroundingRequest__Output as _florence2_v1_PhraseGroundingRequest__Output } from '../../florence2/v1/PhraseGroundingRequest';
import type { SegmentRequest as _florence2_v1_SegmentRequest, SegmentRequest__Output as _florence2_v1_SegmentRequest__Output } from '../../florence2/v1/SegmentRequest';
import type { OcrRequest as _florence2_v1_OcrRequest, OcrRequest__Output as _florence2_v1_OcrRequest__Output } from '../../florence2/v1/OcrRequest';
import type { RegionRequest as _florence2_v1_RegionRequest, RegionRequest__Output as _florence2_v1_RegionRequest__Output } from '../../florence2/v1/RegionRequest';

/**
 * Any task.
 */
export interface RunRequest {
  'caption'?: (_florence2_v1_CaptionRequest | null);
  'detect'?: (_florence2_v1_DetectRequest | null);
  'open_vocabulary'?: (_florence2_v1_OpenVocabularyRequest | null);
  'phrase_grounding'?: (_florence2_v1_PhraseGroundingRequest | null);
  'segment'?: (_florence2_v1_SegmentRequest | null);
  'ocr'?: (_florence2_v1_OcrRequest | null);
  'region'?: (_florence2_v1_RegionRequest | null);
  'task'?: "caption"|"detect"|"open_vocabulary"|"phrase_grounding"|"segment"|"ocr"|"region";
}

/**
 * Any task.
 */
export interface RunRequest__Output {
  'caption'?: (_florence2_v1_CaptionRequest__Output | null);
  'detect'?: (_florence2_v1_DetectRequest__Output | null);
  'open_vocabulary'?: (_florence2_v1_OpenVocabularyRequest__Output | null);
  'phrase_grounding'?: (_florence2_v1_PhraseGroundingRequest__Output | null);
  'segment'?: (_florence2_v1_SegmentRequest__Output | null);
  'ocr'?: (_florence2_v1_OcrRequest__Output | null);
  'region'?: (_florence2_v1_RegionRequest__Output | null);
  'task'?: "caption"|"detect"|"open_vocabulary"|"phrase_grounding"|"segment"|"ocr"|"region";
}
