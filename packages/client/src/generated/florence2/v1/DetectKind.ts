// Original file: proto/florence2/v1/florence2.proto

export const DetectKind = {
  /**
   * = OBJECTS
   */
  DETECT_KIND_UNSPECIFIED: 'DETECT_KIND_UNSPECIFIED',
  /**
   * <OD>: boxes with category names
   */
  DETECT_KIND_OBJECTS: 'DETECT_KIND_OBJECTS',
  /**
   * <DENSE_REGION_CAPTION>: boxes with short descriptions
   */
  DETECT_KIND_DENSE_REGION_CAPTIONS: 'DETECT_KIND_DENSE_REGION_CAPTIONS',
  /**
   * <REGION_PROPOSAL>: boxes without labels
   */
  DETECT_KIND_REGION_PROPOSALS: 'DETECT_KIND_REGION_PROPOSALS',
} as const;

export type DetectKind =
  /**
   * = OBJECTS
   */
  | 'DETECT_KIND_UNSPECIFIED'
  | 0
  /**
   * <OD>: boxes with category names
   */
  | 'DETECT_KIND_OBJECTS'
  | 1
  /**
   * <DENSE_REGION_CAPTION>: boxes with short descriptions
   */
  | 'DETECT_KIND_DENSE_REGION_CAPTIONS'
  | 2
  /**
   * <REGION_PROPOSAL>: boxes without labels
   */
  | 'DETECT_KIND_REGION_PROPOSALS'
  | 3

export type DetectKind__Output = typeof DetectKind[keyof typeof DetectKind]
