// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface PhraseGroundingRequest {
  'image'?: (_florence2_v1_Image | null);
  /**
   * The caption whose phrases to locate, e.g. "A green car parked in front of a yellow building."
   */
  'caption'?: (string);
  'options'?: (_florence2_v1_Options | null);
}

export interface PhraseGroundingRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  /**
   * The caption whose phrases to locate, e.g. "A green car parked in front of a yellow building."
   */
  'caption': (string);
  'options': (_florence2_v1_Options__Output | null);
}
