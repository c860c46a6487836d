// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface OpenVocabularyRequest {
  'image'?: (_florence2_v1_Image | null);
  /**
   * The class names or phrases to find (1 to the server's max_classes); each is one prompt.
   */
  'classes'?: (string)[];
  'options'?: (_florence2_v1_Options | null);
}

export interface OpenVocabularyRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  /**
   * The class names or phrases to find (1 to the server's max_classes); each is one prompt.
   */
  'classes': (string)[];
  'options': (_florence2_v1_Options__Output | null);
}
