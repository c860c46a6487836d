// Original file: proto/florence2/v1/florence2.proto

import type { Device as _florence2_v1_Device, Device__Output as _florence2_v1_Device__Output } from '../../florence2/v1/Device';
import type { Limits as _florence2_v1_Limits, Limits__Output as _florence2_v1_Limits__Output } from '../../florence2/v1/Limits';

export interface ModelInfo {
  /**
   * The model's name (config.json _name_or_path), e.g. "microsoft/Florence-2-base-ft".
   */
  'model'?: (string);
  /**
   * ONNX file per module, e.g. "decoder_model_merged" → "decoder_model_merged_q4.onnx".
   */
  'files'?: ({[key: string]: string});
  'devices'?: (_florence2_v1_Device)[];
  'limits'?: (_florence2_v1_Limits | null);
  /**
   * Generation defaults from the model's configs.
   */
  'default_num_beams'?: (number);
  'default_max_new_tokens'?: (number);
  /**
   * The 15 Florence-2 task tokens the server serves.
   */
  'tasks'?: (string)[];
  'server_version'?: (string);
  'onnxruntime_version'?: (string);
  'node_version'?: (string);
  /**
   * Where the files came from: "<owner>/<name>@<commit>" for a Hub download, "local" for a folder.
   */
  'revision'?: (string);
}

export interface ModelInfo__Output {
  /**
   * The model's name (config.json _name_or_path), e.g. "microsoft/Florence-2-base-ft".
   */
  'model': (string);
  /**
   * ONNX file per module, e.g. "decoder_model_merged" → "decoder_model_merged_q4.onnx".
   */
  'files': ({[key: string]: string});
  'devices': (_florence2_v1_Device__Output)[];
  'limits': (_florence2_v1_Limits__Output | null);
  /**
   * Generation defaults from the model's configs.
   */
  'default_num_beams': (number);
  'default_max_new_tokens': (number);
  /**
   * The 15 Florence-2 task tokens the server serves.
   */
  'tasks': (string)[];
  'server_version': (string);
  'onnxruntime_version': (string);
  'node_version': (string);
  /**
   * Where the files came from: "<owner>/<name>@<commit>" for a Hub download, "local" for a folder.
   */
  'revision': (string);
}
