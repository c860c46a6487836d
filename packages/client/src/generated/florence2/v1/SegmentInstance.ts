// Original file: proto/florence2/v1/florence2.proto

import type { Polygon as _florence2_v1_Polygon, Polygon__Output as _florence2_v1_Polygon__Output } from '../../florence2/v1/Polygon';

/**
 * One segmented instance: its polygons (an object may have several parts) and label.
 */
export interface SegmentInstance {
  'polygons'?: (_florence2_v1_Polygon)[];
  'label'?: (string);
  /**
   * As Box.score: present only when include_scores.
   */
  'score'?: (number | string);
  '_score'?: "score";
}

/**
 * One segmented instance: its polygons (an object may have several parts) and label.
 */
export interface SegmentInstance__Output {
  'polygons': (_florence2_v1_Polygon__Output)[];
  'label': (string);
  /**
   * As Box.score: present only when include_scores.
   */
  'score'?: (number);
  '_score'?: "score";
}
