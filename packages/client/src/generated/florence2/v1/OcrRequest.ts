// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface OcrRequest {
  'image'?: (_florence2_v1_Image | null);
  /**
   * Also locate each text line (<OCR_WITH_REGION>); otherwise only the text (<OCR>).
   */
  'with_regions'?: (boolean);
  'options'?: (_florence2_v1_Options | null);
}

export interface OcrRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  /**
   * Also locate each text line (<OCR_WITH_REGION>); otherwise only the text (<OCR>).
   */
  'with_regions': (boolean);
  'options': (_florence2_v1_Options__Output | null);
}
