// Original file: proto/florence2/v1/florence2.proto


/**
 * A detected box.
 */
export interface Box {
  'x1'?: (number | string);
  'y1'?: (number | string);
  'x2'?: (number | string);
  'y2'?: (number | string);
  /**
   * The class name, phrase or region caption; empty for region proposals.
   */
  'label'?: (string);
  /**
   * Confidence in (0, 1] from the tokens' log-probabilities; present only when include_scores.
   */
  'score'?: (number | string);
  '_score'?: "score";
}

/**
 * A detected box.
 */
export interface Box__Output {
  'x1': (number);
  'y1': (number);
  'x2': (number);
  'y2': (number);
  /**
   * The class name, phrase or region caption; empty for region proposals.
   */
  'label': (string);
  /**
   * Confidence in (0, 1] from the tokens' log-probabilities; present only when include_scores.
   */
  'score'?: (number);
  '_score'?: "score";
}
