// Original file: proto/florence2/v1/florence2.proto


/**
 * One polygon: x1, y1, x2, y2, ..., xn, yn.
 */
export interface Polygon {
  'coords'?: (number | string)[];
}

/**
 * One polygon: x1, y1, x2, y2, ..., xn, yn.
 */
export interface Polygon__Output {
  'coords': (number)[];
}
