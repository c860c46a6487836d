// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { Region as _florence2_v1_Region, Region__Output as _florence2_v1_Region__Output } from '../../florence2/v1/Region';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface SegmentRequest {
  'image'?: (_florence2_v1_Image | null);
  /**
   * What to segment, e.g. "a car" (<REFERRING_EXPRESSION_SEGMENTATION>).
   */
  'referring_expression'?: (string);
  /**
   * The region to segment (<REGION_TO_SEGMENTATION>).
   */
  'region'?: (_florence2_v1_Region | null);
  'options'?: (_florence2_v1_Options | null);
  'target'?: "referring_expression"|"region";
}

export interface SegmentRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  /**
   * What to segment, e.g. "a car" (<REFERRING_EXPRESSION_SEGMENTATION>).
   */
  'referring_expression'?: (string);
  /**
   * The region to segment (<REGION_TO_SEGMENTATION>).
   */
  'region'?: (_florence2_v1_Region__Output | null);
  'options': (_florence2_v1_Options__Output | null);
  'target'?: "referring_expression"|"region";
}
