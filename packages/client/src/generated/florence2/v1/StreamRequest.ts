// Original file: proto/florence2/v1/florence2.proto

import type { RunRequest as _florence2_v1_RunRequest, RunRequest__Output as _florence2_v1_RunRequest__Output } from '../../florence2/v1/RunRequest';

export interface StreamRequest {
  /**
   * Chosen by the client; echoed on the response. Must be non-empty and unique among the stream's in-flight requests.
   */
  'request_id'?: (string);
  'request'?: (_florence2_v1_RunRequest | null);
}

export interface StreamRequest__Output {
  /**
   * Chosen by the client; echoed on the response. Must be non-empty and unique among the stream's in-flight requests.
   */
  'request_id': (string);
  'request': (_florence2_v1_RunRequest__Output | null);
}
