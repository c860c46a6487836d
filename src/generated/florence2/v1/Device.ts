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
}
