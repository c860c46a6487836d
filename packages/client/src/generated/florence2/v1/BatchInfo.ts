// Original file: proto/florence2/v1/florence2.proto


/**
 * The worker batch a request ran in.
 */
export interface BatchInfo {
  /**
   * Client requests in the batch (this one included).
   */
  'requests'?: (number);
  /**
   * Decoder rows (prompts × beams) at the batch's first step.
   */
  'rows'?: (number);
  /**
   * Decoder steps this request's rows took part in.
   */
  'decoder_steps'?: (number);
}

/**
 * The worker batch a request ran in.
 */
export interface BatchInfo__Output {
  /**
   * Client requests in the batch (this one included).
   */
  'requests': (number);
  /**
   * Decoder rows (prompts × beams) at the batch's first step.
   */
  'rows': (number);
  /**
   * Decoder steps this request's rows took part in.
   */
  'decoder_steps': (number);
}
