import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { BatchInfo as _florence2_v1_BatchInfo, BatchInfo__Output as _florence2_v1_BatchInfo__Output } from './florence2/v1/BatchInfo';
import type { Box as _florence2_v1_Box, Box__Output as _florence2_v1_Box__Output } from './florence2/v1/Box';
import type { CaptionRequest as _florence2_v1_CaptionRequest, CaptionRequest__Output as _florence2_v1_CaptionRequest__Output } from './florence2/v1/CaptionRequest';
import type { CaptionResponse as _florence2_v1_CaptionResponse, CaptionResponse__Output as _florence2_v1_CaptionResponse__Output } from './florence2/v1/CaptionResponse';
import type { DetectRequest as _florence2_v1_DetectRequest, DetectRequest__Output as _florence2_v1_DetectRequest__Output } from './florence2/v1/DetectRequest';
import type { DetectResponse as _florence2_v1_DetectResponse, DetectResponse__Output as _florence2_v1_DetectResponse__Output } from './florence2/v1/DetectResponse';
import type { Device as _florence2_v1_Device, Device__Output as _florence2_v1_Device__Output } from './florence2/v1/Device';
import type { Florence2Client as _florence2_v1_Florence2Client, Florence2Definition as _florence2_v1_Florence2Definition } from './florence2/v1/Florence2';
import type { GetModelInfoRequest as _florence2_v1_GetModelInfoRequest, GetModelInfoRequest__Output as _florence2_v1_GetModelInfoRequest__Output } from './florence2/v1/GetModelInfoRequest';
import type { Image as _florence2_v1_Image, Image__Output as _florence2_v1_Image__Output } from './florence2/v1/Image';
import type { Limits as _florence2_v1_Limits, Limits__Output as _florence2_v1_Limits__Output } from './florence2/v1/Limits';
import type { ModelInfo as _florence2_v1_ModelInfo, ModelInfo__Output as _florence2_v1_ModelInfo__Output } from './florence2/v1/ModelInfo';
import type { OcrRequest as _florence2_v1_OcrRequest, OcrRequest__Output as _florence2_v1_OcrRequest__Output } from './florence2/v1/OcrRequest';
import type { OcrResponse as _florence2_v1_OcrResponse, OcrResponse__Output as _florence2_v1_OcrResponse__Output } from './florence2/v1/OcrResponse';
import type { OpenVocabularyRequest as _florence2_v1_OpenVocabularyRequest, OpenVocabularyRequest__Output as _florence2_v1_OpenVocabularyRequest__Output } from './florence2/v1/OpenVocabularyRequest';
import type { OpenVocabularyResponse as _florence2_v1_OpenVocabularyResponse, OpenVocabularyResponse__Output as _florence2_v1_OpenVocabularyResponse__Output } from './florence2/v1/OpenVocabularyResponse';
import type { Options as _florence2_v1_Options, Options__Output as _florence2_v1_Options__Output } from './florence2/v1/Options';
import type { PhraseGroundingRequest as _florence2_v1_PhraseGroundingRequest, PhraseGroundingRequest__Output as _florence2_v1_PhraseGroundingRequest__Output } from './florence2/v1/PhraseGroundingRequest';
import type { Polygon as _florence2_v1_Polygon, Polygon__Output as _florence2_v1_Polygon__Output } from './florence2/v1/Polygon';
import type { QuadBox as _florence2_v1_QuadBox, QuadBox__Output as _florence2_v1_QuadBox__Output } from './florence2/v1/QuadBox';
import type { Region as _florence2_v1_Region, Region__Output as _florence2_v1_Region__Output } from './florence2/v1/Region';
import type { RegionRequest as _florence2_v1_RegionRequest, RegionRequest__Output as _florence2_v1_RegionRequest__Output } from './florence2/v1/RegionRequest';
import type { RegionResponse as _florence2_v1_RegionResponse, RegionResponse__Output as _florence2_v1_RegionResponse__Output } from './florence2/v1/RegionResponse';
import type { ResponseMeta as _florence2_v1_ResponseMeta, ResponseMeta__Output as _florence2_v1_ResponseMeta__Output } from './florence2/v1/ResponseMeta';
import type { RunRequest as _florence2_v1_RunRequest, RunRequest__Output as _florence2_v1_RunRequest__Output } from './florence2/v1/RunRequest';
import type { RunResponse as _florence2_v1_RunResponse, RunResponse__Output as _florence2_v1_RunResponse__Output } from './florence2/v1/RunResponse';
import type { SegmentInstance as _florence2_v1_SegmentInstance, SegmentInstance__Output as _florence2_v1_SegmentInstance__Output } from './florence2/v1/SegmentInstance';
import type { SegmentRequest as _florence2_v1_SegmentRequest, SegmentRequest__Output as _florence2_v1_SegmentRequest__Output } from './florence2/v1/SegmentRequest';
import type { SegmentResponse as _florence2_v1_SegmentResponse, SegmentResponse__Output as _florence2_v1_SegmentResponse__Output } from './florence2/v1/SegmentResponse';
import type { StreamError as _florence2_v1_StreamError, StreamError__Output as _florence2_v1_StreamError__Output } from './florence2/v1/StreamError';
import type { StreamRequest as _florence2_v1_StreamRequest, StreamRequest__Output as _florence2_v1_StreamRequest__Output } from './florence2/v1/StreamRequest';
import type { StreamResponse as _florence2_v1_StreamResponse, StreamResponse__Output as _florence2_v1_StreamResponse__Output } from './florence2/v1/StreamResponse';
import type { Timings as _florence2_v1_Timings, Timings__Output as _florence2_v1_Timings__Output } from './florence2/v1/Timings';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  florence2: {
    v1: {
      BatchInfo: MessageTypeDefinition<_florence2_v1_BatchInfo, _florence2_v1_BatchInfo__Output>
      Box: MessageTypeDefinition<_florence2_v1_Box, _florence2_v1_Box__Output>
      CaptionDetail: EnumTypeDefinition
      CaptionRequest: MessageTypeDefinition<_florence2_v1_CaptionRequest, _florence2_v1_CaptionRequest__Output>
      CaptionResponse: MessageTypeDefinition<_florence2_v1_CaptionResponse, _florence2_v1_CaptionResponse__Output>
      DetectKind: EnumTypeDefinition
      DetectRequest: MessageTypeDefinition<_florence2_v1_DetectRequest, _florence2_v1_DetectRequest__Output>
      DetectResponse: MessageTypeDefinition<_florence2_v1_DetectResponse, _florence2_v1_DetectResponse__Output>
      Device: MessageTypeDefinition<_florence2_v1_Device, _florence2_v1_Device__Output>
      /**
       * Florence-2 tasks. Typed RPCs per task family, a generic Run, a bidirectional Stream, and model info.
       */
      Florence2: SubtypeConstructor<typeof grpc.Client, _florence2_v1_Florence2Client> & { service: _florence2_v1_Florence2Definition }
      GetModelInfoRequest: MessageTypeDefinition<_florence2_v1_GetModelInfoRequest, _florence2_v1_GetModelInfoRequest__Output>
      Image: MessageTypeDefinition<_florence2_v1_Image, _florence2_v1_Image__Output>
      Limits: MessageTypeDefinition<_florence2_v1_Limits, _florence2_v1_Limits__Output>
      ModelInfo: MessageTypeDefinition<_florence2_v1_ModelInfo, _florence2_v1_ModelInfo__Output>
      OcrRequest: MessageTypeDefinition<_florence2_v1_OcrRequest, _florence2_v1_OcrRequest__Output>
      OcrResponse: MessageTypeDefinition<_florence2_v1_OcrResponse, _florence2_v1_OcrResponse__Output>
      OpenVocabularyRequest: MessageTypeDefinition<_florence2_v1_OpenVocabularyRequest, _florence2_v1_OpenVocabularyRequest__Output>
      OpenVocabularyResponse: MessageTypeDefinition<_florence2_v1_OpenVocabularyResponse, _florence2_v1_OpenVocabularyResponse__Output>
      Options: MessageTypeDefinition<_florence2_v1_Options, _florence2_v1_Options__Output>
      PhraseGroundingRequest: MessageTypeDefinition<_florence2_v1_PhraseGroundingRequest, _florence2_v1_PhraseGroundingRequest__Output>
      Polygon: MessageTypeDefinition<_florence2_v1_Polygon, _florence2_v1_Polygon__Output>
      QuadBox: MessageTypeDefinition<_florence2_v1_QuadBox, _florence2_v1_QuadBox__Output>
      Region: MessageTypeDefinition<_florence2_v1_Region, _florence2_v1_Region__Output>
      RegionRequest: MessageTypeDefinition<_florence2_v1_RegionRequest, _florence2_v1_RegionRequest__Output>
      RegionResponse: MessageTypeDefinition<_florence2_v1_RegionResponse, _florence2_v1_RegionResponse__Output>
      RegionTask: EnumTypeDefinition
      ResponseMeta: MessageTypeDefinition<_florence2_v1_ResponseMeta, _florence2_v1_ResponseMeta__Output>
      RunRequest: MessageTypeDefinition<_florence2_v1_RunRequest, _florence2_v1_RunRequest__Output>
      RunResponse: MessageTypeDefinition<_florence2_v1_RunResponse, _florence2_v1_RunResponse__Output>
      SegmentInstance: MessageTypeDefinition<_florence2_v1_SegmentInstance, _florence2_v1_SegmentInstance__Output>
      SegmentRequest: MessageTypeDefinition<_florence2_v1_SegmentRequest, _florence2_v1_SegmentRequest__Output>
      SegmentResponse: MessageTypeDefinition<_florence2_v1_SegmentResponse, _florence2_v1_SegmentResponse__Output>
      StreamError: MessageTypeDefinition<_florence2_v1_StreamError, _florence2_v1_StreamError__Output>
      StreamRequest: MessageTypeDefinition<_florence2_v1_StreamRequest, _florence2_v1_StreamRequest__Output>
      StreamResponse: MessageTypeDefinition<_florence2_v1_StreamResponse, _florence2_v1_StreamResponse__Output>
      Timings: MessageTypeDefinition<_florence2_v1_Timings, _florence2_v1_Timings__Output>
    }
  }
}

