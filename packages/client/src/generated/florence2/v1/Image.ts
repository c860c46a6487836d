// Original file: proto/florence2/v1/florence2.proto


/**
 * An encoded image: JPEG, PNG, WebP, GIF (first frame), TIFF (first page) or AVIF.
 */
export interface Image {
  /**
   * The file's bytes. Images with more pixels than the server's limit are rejected before decoding.
   */
  'data'?: (Buffer | Uint8Array | string);
}

/**
 * An encoded image: JPEG, PNG, WebP, GIF (first frame), TIFF (first page) or AVIF.
 */
export interface Image__Output {
  /**
   * The file's bytes. Images with more pixels than the server's limit are rejected before decoding.
   */
  'data': (Buffer);
}
