// Original file: proto/florence2/v1/florence2.proto


/**
 * Time spent per stage, in milliseconds. For requests batched together, stage times are the batch's.
 * 
 * Requests that arrive together run in one worker batch. preprocess_ms, vision_ms and encoder_ms are
 * the batch's (shared by every request of it, see BatchInfo); decode_ms and postprocess_ms are this
 * request's own.
 */
export interface Timings {
  /**
   * From arrival until its batch started (includes batch_wait_ms).
   */
  'queue_ms'?: (number | string);
  /**
   * Decoding, resizing and normalizing the batch's images (shared).
   */
  'preprocess_ms'?: (number | string);
  /**
   * Vision encoder over the batch's images (shared).
   */
  'vision_ms'?: (number | string);
  /**
   * Prompt embedding and language-model encoder over the batch (shared).
   */
  'encoder_ms'?: (number | string);
  /**
   * Autoregressive decoding until this request's rows finished.
   */
  'decode_ms'?: (number | string);
  /**
   * Decoding ids to text and parsing.
   */
  'postprocess_ms'?: (number | string);
  /**
   * From arrival to response.
   */
  'total_ms'?: (number | string);
  /**
   * The part of queue_ms a worker was free while the batch gathered (max_queue_delay_ms).
   */
  'batch_wait_ms'?: (number | string);
}

/**
 * Time spent per stage, in milliseconds. For requests batched together, stage times are the batch's.
 * 
 * Requests that arrive together run in one worker batch. preprocess_ms, vision_ms and encoder_ms are
 * the batch's (shared by every request of it, see BatchInfo); decode_ms and postprocess_ms are this
 * request's own.
 */
export interface Timings__Output {
  /**
   * From arrival until its batch started (includes batch_wait_ms).
   */
  'queue_ms': (number);
  /**
   * Decoding, resizing and normalizing the batch's images (shared).
   */
  'preprocess_ms': (number);
  /**
   * Vision encoder over the batch's images (shared).
   */
  'vision_ms': (number);
  /**
   * Prompt embedding and language-model encoder over the batch (shared).
   */
  'encoder_ms': (number);
  /**
   * Autoregressive decoding until this request's rows finished.
   */
  'decode_ms': (number);
  /**
   * Decoding ids to text and parsing.
   */
  'postprocess_ms': (number);
  /**
   * From arrival to response.
   */
  'total_ms': (number);
  /**
   * The part of queue_ms a worker was free while the batch gathered (max_queue_delay_ms).
   */
  'batch_wait_ms': (number);
}
