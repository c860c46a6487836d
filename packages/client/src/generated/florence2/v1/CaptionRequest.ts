// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { CaptionDetail as _florence2_v1_CaptionDetail, CaptionDetail__Output as _florence2_v1_CaptionDetail__Output } from '../../florence2/v1/CaptionDetail';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface CaptionRequest {
  'image'?: (_florence2_v1_Image | null);
  'detail'?: (_florence2_v1_CaptionDetail);
  'options'?: (_florence2_v1_Options | null);
}

export interface CaptionRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  'detail': (_florence2_v1_CaptionDetail__Output);
  'options': (_florence2_v1_Options__Output | null);
}
