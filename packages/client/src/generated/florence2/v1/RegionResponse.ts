// Original file: proto/florence2/v1/florence2.proto

import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from '../../florence2/v1/ResponseMeta';

export interface RegionResponse {
  /**
   * The answer; Florence-2 often repeats the region's location tokens after it (kept verbatim).
   */
  'text'?: (string);
  'meta'?: (_florence2_v1_ResponseMeta | null);
}

export interface RegionResponse__Output {
  /**
   * The answer; Florence-2 often repeats the region's location tokens after it (kept verbatim).
   */
  'text': (string);
  'meta': (_florence2_v1_ResponseMeta__Output | null);
}
