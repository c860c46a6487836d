// Original file: proto/florence2/v1/florence2.proto

export const CaptionDetail = {
  /**
   * = BRIEF
   */
  CAPTION_DETAIL_UNSPECIFIED: 'CAPTION_DETAIL_UNSPECIFIED',
  /**
   * <CAPTION>
   */
  CAPTION_DETAIL_BRIEF: 'CAPTION_DETAIL_BRIEF',
  /**
   * <DETAILED_CAPTION>
   */
  CAPTION_DETAIL_DETAILED: 'CAPTION_DETAIL_DETAILED',
  /**
   * <MORE_DETAILED_CAPTION>
   */
  CAPTION_DETAIL_PARAGRAPH: 'CAPTION_DETAIL_PARAGRAPH',
} as const;

export type CaptionDetail =
  /**
   * = BRIEF
   */
  | 'CAPTION_DETAIL_UNSPECIFIED'
  | 0
  /**
   * <CAPTION>
   */
  | 'CAPTION_DETAIL_BRIEF'
  | 1
  /**
   * <DETAILED_CAPTION>
   */
  | 'CAPTION_DETAIL_DETAILED'
  | 2
  /**
   * <MORE_DETAILED_CAPTION>
   */
  | 'CAPTION_DETAIL_PARAGRAPH'
  | 3

export type CaptionDetail__Output = typeof CaptionDetail[keyof typeof CaptionDetail]
