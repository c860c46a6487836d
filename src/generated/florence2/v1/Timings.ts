// Original file: proto/florence2/v1/florence2.proto


/**
 * Time spent per stage, in milliseconds. For requests batched together, stage times are the batch's.
 */
export interface Timings {
  /**
   * Waiting for a worker (admission queue).
   */
  'queue_ms'?: (number | string);
  /**
   * Decoding, resizing and normalizing the image.
   */
  'preprocess_ms'?: (number | string);
  /**
   * Vision encoder.
   */
  'vision_ms'?: (number | string);
  /**
   * Prompt embedding and language-model encoder.
   */
  'encoder_ms'?: (number | string);
  /**
   * Autoregressive decoding (all decoder steps).
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
}

/**
 * Time spent per stage, in milliseconds. For requests batched together, stage times are the batch's.
 */
export interface Timings__Output {
  /**
   * Waiting for a worker (admission queue).
   */
  'queue_ms': (number);
  /**
   * Decoding, resizing and normalizing the image.
   */
  'preprocess_ms': (number);
  /**
   * Vision encoder.
   */
  'vision_ms': (number);
  /**
   * Prompt embedding and language-model encoder.
   */
  'encoder_ms': (number);
  /**
   * Autoregressive decoding (all decoder steps).
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
}
