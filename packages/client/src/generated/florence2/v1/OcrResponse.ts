// Original file: proto/florence2/v1/florence2.proto

import type { QuadBox as _florence2_v1_QuadBox, QuadBox__Output as _florence2_v1_QuadBox__Output } from '../../florence2/v1/QuadBox';
import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from '../../florence2/v1/ResponseMeta';

export interface OcrResponse {
  /**
   * The text: without regions as the model emits it (lines run together); with regions the lines joined by newlines.
   */
  'text'?: (string);
  /**
   * Text lines with their quadrilaterals (with_regions only).
   */
  'lines'?: (_florence2_v1_QuadBox)[];
  'meta'?: (_florence2_v1_ResponseMeta | null);
}

export interface OcrResponse__Output {
  /**
   * The text: without regions as the model emits it (lines run together); with regions the lines joined by newlines.
   */
  'text': (string);
  /**
   * Text lines with their quadrilaterals (with_regions only).
   */
  'lines': (_florence2_v1_QuadBox__Output)[];
  'meta': (_florence2_v1_ResponseMeta__Output | null);
}
