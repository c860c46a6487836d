// Original file: proto/florence2/v1/florence2.proto

import type { RunResponse as _florence2_v1_RunResponse, RunResponse__Output as _florence2_v1_RunResponse__Output } from '../../florence2/v1/RunResponse';
import type { StreamError as _florence2_v1_StreamError, StreamError__Output as _florence2_v1_StreamError__Output } from '../../florence2/v1/StreamError';

export interface StreamResponse {
  'request_id'?: (string);
  'result'?: (_florence2_v1_RunResponse | null);
  'error'?: (_florence2_v1_StreamError | null);
  'outcome'?: "result"|"error";
}

export interface StreamResponse__Output {
  'request_id': (string);
  'result'?: (_florence2_v1_RunResponse__Output | null);
  'error'?: (_florence2_v1_StreamError__Output | null);
  'outcome'?: "result"|"error";
}
