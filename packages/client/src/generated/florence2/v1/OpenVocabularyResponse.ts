// Original file: proto/florence2/v1/florence2.proto

import type { Box as _florence2_v1_Box, Box__Output as _florence2_v1_Box__Output } from '../../florence2/v1/Box';
import type { SegmentInstance as _florence2_v1_SegmentInstance, SegmentInstance__Output as _florence2_v1_SegmentInstance__Output } from '../../florence2/v1/SegmentInstance';
import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from '../../florence2/v1/ResponseMeta';

export interface OpenVocabularyResponse {
  /**
   * Boxes found, labelled with the class that was asked for.
   */
  'boxes'?: (_florence2_v1_Box)[];
  /**
   * Instances the model answered with polygons instead of boxes.
   */
  'instances'?: (_florence2_v1_SegmentInstance)[];
  /**
   * Summed over the per-class prompts (timings are the batch's).
   */
  'meta'?: (_florence2_v1_ResponseMeta | null);
}

export interface OpenVocabularyResponse__Output {
  /**
   * Boxes found, labelled with the class that was asked for.
   */
  'boxes': (_florence2_v1_Box__Output)[];
  /**
   * Instances the model answered with polygons instead of boxes.
   */
  'instances': (_florence2_v1_SegmentInstance__Output)[];
  /**
   * Summed over the per-class prompts (timings are the batch's).
   */
  'meta': (_florence2_v1_ResponseMeta__Output | null);
}
