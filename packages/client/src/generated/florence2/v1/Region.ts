// Original file: proto/florence2/v1/florence2.proto


/**
 * A box in pixels: top-left (x1, y1), bottom-right (x2, y2); x1 <= x2, y1 <= y2, inside the image.
 */
export interface Region {
  'x1'?: (number | string);
  'y1'?: (number | string);
  'x2'?: (number | string);
  'y2'?: (number | string);
}

/**
 * A box in pixels: top-left (x1, y1), bottom-right (x2, y2); x1 <= x2, y1 <= y2, inside the image.
 */
export interface Region__Output {
  'x1': (number);
  'y1': (number);
  'x2': (number);
  'y2': (number);
}
