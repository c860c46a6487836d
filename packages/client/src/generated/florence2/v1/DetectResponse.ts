// Original file: proto/florence2/v1/florence2.proto

import type { Box as _florence2_v1_Box, Box__Output as _florence2_v1_Box__Output } from '../../florence2/v1/Box';
import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from '../../florence2/v1/ResponseMeta';

export interface DetectResponse {
  'boxes'?: (_florence2_v1_Box)[];
  'meta'?: (_florence2_v1_ResponseMeta | null);
}

export interface DetectResponse__Output {
  'boxes': (_florence2_v1_Box__Output)[];
  'meta': (_florence2_v1_ResponseMeta__Output | null);
}
