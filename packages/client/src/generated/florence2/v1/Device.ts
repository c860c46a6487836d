// Original file: proto/florence2/v1/florence2.proto


/**
 * A device the server runs workers on.
 */
export interface Device {
  /**
   * e.g. "cpu:0", "cuda:1".
   */
  'name'?: (string);
  /**
   * Execution provider: "cpu", "cuda", "tensorrt", "webgpu".
   */
  'provider'?: (string);
  'workers'?: (number);
  /**
   * Batching on this device: decoder rows per batch (prompts × beams), how long the oldest waiting
   * request waits for others while a worker is free, and images per vision-encoder call.
   */
  'max_batch_rows'?: (number);
  'max_queue_delay_ms'?: (number);
  'max_vision_batch'?: (number);
}

/**
 * A device the server runs workers on.
 */
export interface Device__Output {
  /**
   * e.g. "cpu:0", "cuda:1".
   */
  'name': (string);
  /**
   * Execution provider: "cpu", "cuda", "tensorrt", "webgpu".
   */
  'provider': (string);
  'workers': (number);
  /**
   * Batching on this device: decoder rows per batch (prompts × beams), how long the oldest waiting
   * request waits for others while a worker is free, and images per vision-encoder call.
   */
  'max_batch_rows': (number);
  'max_queue_delay_ms': (number);
  'max_vision_batch': (number);
}
