// Original file: proto/florence2/v1/florence2.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Server limits; requests beyond them get INVALID_ARGUMENT.
 */
export interface Limits {
  'max_image_pixels'?: (number | string | Long);
  'max_message_bytes'?: (number | string | Long);
  'max_num_beams'?: (number);
  'max_new_tokens'?: (number);
  'max_text_chars'?: (number);
  'max_classes'?: (number);
}

/**
 * Server limits; requests beyond them get INVALID_ARGUMENT.
 */
export interface Limits__Output {
  'max_image_pixels': (string);
  'max_message_bytes': (string);
  'max_num_beams': (number);
  'max_new_tokens': (number);
  'max_text_chars': (number);
  'max_classes': (number);
}
