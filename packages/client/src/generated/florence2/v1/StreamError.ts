// Original file: proto/florence2/v1/florence2.proto


/**
 * A failed stream request: its gRPC status code and message.
 */
export interface StreamError {
  /**
   * A google.rpc.Code value (3 = INVALID_ARGUMENT, 8 = RESOURCE_EXHAUSTED, ...).
   */
  'code'?: (number);
  'message'?: (string);
}

/**
 * A failed stream request: its gRPC status code and message.
 */
export interface StreamError__Output {
  /**
   * A google.rpc.Code value (3 = INVALID_ARGUMENT, 8 = RESOURCE_EXHAUSTED, ...).
   */
  'code': (number);
  'message': (string);
}
