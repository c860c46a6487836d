// Original file: proto/florence2/v1/florence2.proto

import type { SegmentInstance as _florence2_v1_SegmentInstance, SegmentInstance__Output as _florence2_v1_SegmentInstance__Output } from '../../florence2/v1/SegmentInstance';
import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from '../../florence2/v1/ResponseMeta';

export interface SegmentResponse {
  'instances'?: (_florence2_v1_SegmentInstance)[];
  'meta'?: (_florence2_v1_ResponseMeta | null);
}

export interface SegmentResponse__Output {
  'instances': (_florence2_v1_SegmentInstance__Output)[];
  'meta': (_florence2_v1_ResponseMeta__Output | null);
}
