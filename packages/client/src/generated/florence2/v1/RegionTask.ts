// Original file: proto/florence2/v1/florence2.proto

export const RegionTask = {
  /**
   * = CATEGORY
   */
  REGION_TASK_UNSPECIFIED: 'REGION_TASK_UNSPECIFIED',
  /**
   * <REGION_TO_CATEGORY>
   */
  REGION_TASK_CATEGORY: 'REGION_TASK_CATEGORY',
  /**
   * <REGION_TO_DESCRIPTION>
   */
  REGION_TASK_DESCRIPTION: 'REGION_TASK_DESCRIPTION',
  /**
   * <REGION_TO_OCR>
   */
  REGION_TASK_OCR: 'REGION_TASK_OCR',
} as const;

export type RegionTask =
  /**
   * = CATEGORY
   */
  | 'REGION_TASK_UNSPECIFIED'
  | 0
  /**
   * <REGION_TO_CATEGORY>
   */
  | 'REGION_TASK_CATEGORY'
  | 1
  /**
   * <REGION_TO_DESCRIPTION>
   */
  | 'REGION_TASK_DESCRIPTION'
  | 2
  /**
   * <REGION_TO_OCR>
   */
  | 'REGION_TASK_OCR'
  | 3

export type RegionTask__Output = typeof RegionTask[keyof typeof RegionTask]
