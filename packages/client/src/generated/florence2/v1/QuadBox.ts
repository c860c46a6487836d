// Original file: proto/florence2/v1/florence2.proto


/**
 * A text line and its quadrilateral, corners clockwise from the top-left.
 */
export interface QuadBox {
  /**
   * x1, y1, x2, y2, x3, y3, x4, y4.
   */
  'points'?: (number | string)[];
  'text'?: (string);
  /**
   * As Box.score: present only when include_scores.
   */
  'score'?: (number | string);
  '_score'?: "score";
}

/**
 * A text line and its quadrilateral, corners clockwise from the top-left.
 */
export interface QuadBox__Output {
  /**
   * x1, y1, x2, y2, x3, y3, x4, y4.
   */
  'points': (number)[];
  'text': (string);
  /**
   * As Box.score: present only when include_scores.
   */
  'score'?: (number);
  '_score'?: "score";
}
