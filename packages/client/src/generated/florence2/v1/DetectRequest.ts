// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { DetectKind as _florence2_v1_DetectKind, DetectKind__Output as _florence2_v1_DetectKind__Output } from '../../florence2/v1/DetectKind';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface DetectRequest {
  'image'?: (_florence2_v1_Image | null);
  'kind'?: (_florence2_v1_DetectKind);
  'options'?: (_florence2_v1_Options | null);
}

export interface DetectRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  'kind': (_florence2_v1_DetectKind__Output);
  'options': (_florence2_v1_Options__Output | null);
}
