// Original file: proto/florence2/v1/florence2.proto

import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from '../../florence2/v1/Image';
import type { Region as _florence2_v1_Region, Region__Output as _florence2_v1_Region__Output } from '../../florence2/v1/Region';
import type { RegionTask as _florence2_v1_RegionTask, RegionTask__Output as _florence2_v1_RegionTask__Output } from '../../florence2/v1/RegionTask';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from '../../florence2/v1/Options';

export interface RegionRequest {
  'image'?: (_florence2_v1_Image | null);
  'region'?: (_florence2_v1_Region | null);
  'task'?: (_florence2_v1_RegionTask);
  'options'?: (_florence2_v1_Options | null);
}

export interface RegionRequest__Output {
  'image': (_florence2_v1_Image__Output | null);
  'region': (_florence2_v1_Region__Output | null);
  'task': (_florence2_v1_RegionTask__Output);
  'options': (_florence2_v1_Options__Output | null);
}
