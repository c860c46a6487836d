// Original file: proto/florence2/v1/florence2.proto


/**
 * Per-request options.
 */
export interface Options {
  /**
   * Beam width; 0 = the model's default (3 for Florence-2). At most the server's max_num_beams.
   */
  'num_beams'?: (number);
  /**
   * Upper bound on generated tokens; 0 = the server default. At most the server's max_new_tokens.
   */
  'max_new_tokens'?: (number);
  /**
   * Return the model's decoded output (special tokens included) in ResponseMeta.raw_text.
   */
  'include_raw_text'?: (boolean);
  /**
   * Return confidence scores (boxes, quadrilaterals, polygons); otherwise score fields are absent.
   */
  'include_scores'?: (boolean);
}

/**
 * Per-request options.
 */
export interface Options__Output {
  /**
   * Beam width; 0 = the model's default (3 for Florence-2). At most the server's max_num_beams.
   */
  'num_beams': (number);
  /**
   * Upper bound on generated tokens; 0 = the server default. At most the server's max_new_tokens.
   */
  'max_new_tokens': (number);
  /**
   * Return the model's decoded output (special tokens included) in ResponseMeta.raw_text.
   */
  'include_raw_text': (boolean);
  /**
   * Return confidence scores (boxes, quadrilaterals, polygons); otherwise score fields are absent.
   */
  'include_scores': (boolean);
}
