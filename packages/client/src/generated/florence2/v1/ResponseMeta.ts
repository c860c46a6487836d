// Original file: proto/florence2/v1/florence2.proto

import type { Timings as _florence2_v1_Timings, Timings__Output as _florence2_v1_Timings__Output } from '../../florence2/v1/Timings';
import type { BatchInfo as _florence2_v1_BatchInfo, BatchInfo__Output as _florence2_v1_BatchInfo__Output } from '../../florence2/v1/BatchInfo';

/**
 * Facts about how a response was produced.
 */
export interface ResponseMeta {
  'timings'?: (_florence2_v1_Timings | null);
  /**
   * Prompt tokens (after the task prompt was built).
   */
  'prompt_tokens'?: (number);
  /**
   * Generated tokens, the decoder start token excluded.
   */
  'generated_tokens'?: (number);
  /**
   * The model's decoded output, when Options.include_raw_text was set.
   */
  'raw_text'?: (string);
  /**
   * Width and height of the image as decoded (after EXIF orientation).
   */
  'image_width'?: (number);
  'image_height'?: (number);
  /**
   * The server's id for this request (also in its logs).
   */
  'request_id'?: (string);
  /**
   * The device that ran the request, e.g. "cpu:0" or "cuda:1".
   */
  'device'?: (string);
  /**
   * The batch the request ran in.
   */
  'batch'?: (_florence2_v1_BatchInfo | null);
}

/**
 * Facts about how a response was produced.
 */
export interface ResponseMeta__Output {
  'timings': (_florence2_v1_Timings__Output | null);
  /**
   * Prompt tokens (after the task prompt was built).
   */
  'prompt_tokens': (number);
  /**
   * Generated tokens, the decoder start token excluded.
   */
  'generated_tokens': (number);
  /**
   * The model's decoded output, when Options.include_raw_text was set.
   */
  'raw_text': (string);
  /**
   * Width and height of the image as decoded (after EXIF orientation).
   */
  'image_width': (number);
  'image_height': (number);
  /**
   * The server's id for this request (also in its logs).
   */
  'request_id': (string);
  /**
   * The device that ran the request, e.g. "cpu:0" or "cuda:1".
   */
  'device': (string);
  /**
   * The batch the request ran in.
   */
  'batch': (_florence2_v1_BatchInfo__Output | null);
}
