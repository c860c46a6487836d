// Original file: proto/florence2/v1/florence2.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CaptionRequest as _florence2_v1_CaptionRequest, CaptionRequest__Output as _florence2_v1_CaptionRequest__Output } from '../../florence2/v1/CaptionRequest';
import type { CaptionResponse as _florence2_v1_CaptionResponse, CaptionResponse__Output as _florence2_v1_CaptionResponse__Output } from '../../florence2/v1/CaptionResponse';
import type { DetectRequest as _florence2_v1_DetectRequest, DetectRequest__Output as _florence2_v1_DetectRequest__Output } from '../../florence2/v1/DetectRequest';
import type { DetectResponse as _florence2_v1_DetectResponse, DetectResponse__Output as _florence2_v1_DetectResponse__Output } from '../../florence2/v1/DetectResponse';
import type { GetModelInfoRequest as _florence2_v1_GetModelInfoRequest, GetModelInfoRequest__Output as _florence2_v1_GetModelInfoRequest__Output } from '../../florence2/v1/GetModelInfoRequest';
import type { ModelInfo as _florence2_v1_ModelInfo, ModelInfo__Output as _florence2_v1_ModelInfo__Output } from '../../florence2/v1/ModelInfo';
import type { OcrRequest as _florence2_v1_OcrRequest, OcrRequest__Output as _florence2_v1_OcrRequest__Output } from '../../florence2/v1/OcrRequest';
import type { OcrResponse as _florence2_v1_OcrResponse, OcrResponse__Output as _florence2_v1_OcrResponse__Output } from '../../florence2/v1/OcrResponse';
import type { OpenVocabularyRequest as _florence2_v1_OpenVocabularyRequest, OpenVocabularyRequest__Output as _florence2_v1_OpenVocabularyRequest__Output } from '../../florence2/v1/OpenVocabularyRequest';
import type { OpenVocabularyResponse as _florence2_v1_OpenVocabularyResponse, OpenVocabularyResponse__Output as _florence2_v1_OpenVocabularyResponse__Output } from '../../florence2/v1/OpenVocabularyResponse';
import type { PhraseGroundingRequest as _florence2_v1_PhraseGroundingRequest, PhraseGroundingRequest__Output as _florence2_v1_PhraseGroundingRequest__Output } from '../../florence2/v1/PhraseGroundingRequest';
import type { RegionRequest as _florence2_v1_RegionRequest, RegionRequest__Output as _florence2_v1_RegionRequest__Output } from '../../florence2/v1/RegionRequest';
import type { RegionResponse as _florence2_v1_RegionResponse, RegionResponse__Output as _florence2_v1_RegionResponse__Output } from '../../florence2/v1/RegionResponse';
import type { RunRequest as _florence2_v1_RunRequest, RunRequest__Output as _florence2_v1_RunRequest__Output } from '../../florence2/v1/RunRequest';
import type { RunResponse as _florence2_v1_RunResponse, RunResponse__Output as _florence2_v1_RunResponse__Output } from '../../florence2/v1/RunResponse';
import type { SegmentRequest as _florence2_v1_SegmentRequest, SegmentRequest__Output as _florence2_v1_SegmentRequest__Output } from '../../florence2/v1/SegmentRequest';
import type { SegmentResponse as _florence2_v1_SegmentResponse, SegmentResponse__Output as _florence2_v1_SegmentResponse__Output } from '../../florence2/v1/SegmentResponse';
import type { StreamRequest as _florence2_v1_StreamRequest, StreamRequest__Output as _florence2_v1_StreamRequest__Output } from '../../florence2/v1/StreamRequest';
import type { StreamResponse as _florence2_v1_StreamResponse, StreamResponse__Output as _florence2_v1_StreamResponse__Output } from '../../florence2/v1/StreamResponse';

/**
 * Florence-2 tasks. Typed RPCs per task family, a generic Run, a bidirectional Stream, and model info.
 */
export interface Florence2Client extends grpc.Client {
  /**
   * Image captioning at one of three detail levels (<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>).
   */
  Caption(argument: _florence2_v1_CaptionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  Caption(argument: _florence2_v1_CaptionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  Caption(argument: _florence2_v1_CaptionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  Caption(argument: _florence2_v1_CaptionRequest, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Image captioning at one of three detail levels (<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>).
   */
  caption(argument: _florence2_v1_CaptionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  caption(argument: _florence2_v1_CaptionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  caption(argument: _florence2_v1_CaptionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  caption(argument: _florence2_v1_CaptionRequest, callback: grpc.requestCallback<_florence2_v1_CaptionResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The category, a description, or the text of one region (<REGION_TO_CATEGORY>, <REGION_TO_DESCRIPTION>, <REGION_TO_OCR>).
   */
  DescribeRegion(argument: _florence2_v1_RegionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  DescribeRegion(argument: _florence2_v1_RegionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  DescribeRegion(argument: _florence2_v1_RegionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  DescribeRegion(argument: _florence2_v1_RegionRequest, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  /**
   * The category, a description, or the text of one region (<REGION_TO_CATEGORY>, <REGION_TO_DESCRIPTION>, <REGION_TO_OCR>).
   */
  describeRegion(argument: _florence2_v1_RegionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  describeRegion(argument: _florence2_v1_RegionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  describeRegion(argument: _florence2_v1_RegionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  describeRegion(argument: _florence2_v1_RegionRequest, callback: grpc.requestCallback<_florence2_v1_RegionResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Box detection without text input: objects (<OD>), dense region captions, region proposals.
   */
  Detect(argument: _florence2_v1_DetectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  Detect(argument: _florence2_v1_DetectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  Detect(argument: _florence2_v1_DetectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  Detect(argument: _florence2_v1_DetectRequest, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Box detection without text input: objects (<OD>), dense region captions, region proposals.
   */
  detect(argument: _florence2_v1_DetectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  detect(argument: _florence2_v1_DetectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  detect(argument: _florence2_v1_DetectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  detect(argument: _florence2_v1_DetectRequest, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Open-vocabulary detection of the given classes (<OPEN_VOCABULARY_DETECTION>, one prompt per class).
   */
  DetectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  DetectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  DetectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  DetectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Open-vocabulary detection of the given classes (<OPEN_VOCABULARY_DETECTION>, one prompt per class).
   */
  detectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  detectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  detectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  detectOpenVocabulary(argument: _florence2_v1_OpenVocabularyRequest, callback: grpc.requestCallback<_florence2_v1_OpenVocabularyResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The served model, its devices, limits and versions.
   */
  GetModelInfo(argument: _florence2_v1_GetModelInfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModelInfo(argument: _florence2_v1_GetModelInfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModelInfo(argument: _florence2_v1_GetModelInfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModelInfo(argument: _florence2_v1_GetModelInfoRequest, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  /**
   * The served model, its devices, limits and versions.
   */
  getModelInfo(argument: _florence2_v1_GetModelInfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModelInfo(argument: _florence2_v1_GetModelInfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModelInfo(argument: _florence2_v1_GetModelInfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModelInfo(argument: _florence2_v1_GetModelInfoRequest, callback: grpc.requestCallback<_florence2_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  
  /**
   * Boxes for the phrases of a caption (<CAPTION_TO_PHRASE_GROUNDING>).
   */
  GroundPhrases(argument: _florence2_v1_PhraseGroundingRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  GroundPhrases(argument: _florence2_v1_PhraseGroundingRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  GroundPhrases(argument: _florence2_v1_PhraseGroundingRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  GroundPhrases(argument: _florence2_v1_PhraseGroundingRequest, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Boxes for the phrases of a caption (<CAPTION_TO_PHRASE_GROUNDING>).
   */
  groundPhrases(argument: _florence2_v1_PhraseGroundingRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  groundPhrases(argument: _florence2_v1_PhraseGroundingRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  groundPhrases(argument: _florence2_v1_PhraseGroundingRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  groundPhrases(argument: _florence2_v1_PhraseGroundingRequest, callback: grpc.requestCallback<_florence2_v1_DetectResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Text in the image (<OCR>), or text lines with their quadrilaterals (<OCR_WITH_REGION>).
   */
  Ocr(argument: _florence2_v1_OcrRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  Ocr(argument: _florence2_v1_OcrRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  Ocr(argument: _florence2_v1_OcrRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  Ocr(argument: _florence2_v1_OcrRequest, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Text in the image (<OCR>), or text lines with their quadrilaterals (<OCR_WITH_REGION>).
   */
  ocr(argument: _florence2_v1_OcrRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  ocr(argument: _florence2_v1_OcrRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  ocr(argument: _florence2_v1_OcrRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  ocr(argument: _florence2_v1_OcrRequest, callback: grpc.requestCallback<_florence2_v1_OcrResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Any of the above, chosen by the request's oneof.
   */
  Run(argument: _florence2_v1_RunRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  Run(argument: _florence2_v1_RunRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  Run(argument: _florence2_v1_RunRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  Run(argument: _florence2_v1_RunRequest, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Any of the above, chosen by the request's oneof.
   */
  run(argument: _florence2_v1_RunRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  run(argument: _florence2_v1_RunRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  run(argument: _florence2_v1_RunRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  run(argument: _florence2_v1_RunRequest, callback: grpc.requestCallback<_florence2_v1_RunResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Polygon masks for a referring expression (<REFERRING_EXPRESSION_SEGMENTATION>) or a region (<REGION_TO_SEGMENTATION>).
   */
  Segment(argument: _florence2_v1_SegmentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  Segment(argument: _florence2_v1_SegmentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  Segment(argument: _florence2_v1_SegmentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  Segment(argument: _florence2_v1_SegmentRequest, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Polygon masks for a referring expression (<REFERRING_EXPRESSION_SEGMENTATION>) or a region (<REGION_TO_SEGMENTATION>).
   */
  segment(argument: _florence2_v1_SegmentRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  segment(argument: _florence2_v1_SegmentRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  segment(argument: _florence2_v1_SegmentRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  segment(argument: _florence2_v1_SegmentRequest, callback: grpc.requestCallback<_florence2_v1_SegmentResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * High-throughput pipelines: many requests on one call. Each response carries its request_id;
   * responses may arrive in a different order than the requests. A failed request yields an
   * error for its request_id and the stream goes on.
   */
  Stream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_florence2_v1_StreamRequest, _florence2_v1_StreamResponse__Output>;
  Stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_florence2_v1_StreamRequest, _florence2_v1_StreamResponse__Output>;
  /**
   * High-throughput pipelines: many requests on one call. Each response carries its request_id;
   * responses may arrive in a different order than the requests. A failed request yields an
   * error for its request_id and the stream goes on.
   */
  stream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_florence2_v1_StreamRequest, _florence2_v1_StreamResponse__Output>;
  stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_florence2_v1_StreamRequest, _florence2_v1_StreamResponse__Output>;
  
}

/**
 * Florence-2 tasks. Typed RPCs per task family, a generic Run, a bidirectional Stream, and model info.
 */
export interface Florence2Handlers extends grpc.UntypedServiceImplementation {
  /**
   * Image captioning at one of three detail levels (<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>).
   */
  Caption: grpc.handleUnaryCall<_florence2_v1_CaptionRequest__Output, _florence2_v1_CaptionResponse>;
  
  /**
   * The category, a description, or the text of one region (<REGION_TO_CATEGORY>, <REGION_TO_DESCRIPTION>, <REGION_TO_OCR>).
   */
  DescribeRegion: grpc.handleUnaryCall<_florence2_v1_RegionRequest__Output, _florence2_v1_RegionResponse>;
  
  /**
   * Box detection without text input: objects (<OD>), dense region captions, region proposals.
   */
  Detect: grpc.handleUnaryCall<_florence2_v1_DetectRequest__Output, _florence2_v1_DetectResponse>;
  
  /**
   * Open-vocabulary detection of the given classes (<OPEN_VOCABULARY_DETECTION>, one prompt per class).
   */
  DetectOpenVocabulary: grpc.handleUnaryCall<_florence2_v1_OpenVocabularyRequest__Output, _florence2_v1_OpenVocabularyResponse>;
  
  /**
   * The served model, its devices, limits and versions.
   */
  GetModelInfo: grpc.handleUnaryCall<_florence2_v1_GetModelInfoRequest__Output, _florence2_v1_ModelInfo>;
  
  /**
   * Boxes for the phrases of a caption (<CAPTION_TO_PHRASE_GROUNDING>).
   */
  GroundPhrases: grpc.handleUnaryCall<_florence2_v1_PhraseGroundingRequest__Output, _florence2_v1_DetectResponse>;
  
  /**
   * Text in the image (<OCR>), or text lines with their quadrilaterals (<OCR_WITH_REGION>).
   */
  Ocr: grpc.handleUnaryCall<_florence2_v1_OcrRequest__Output, _florence2_v1_OcrResponse>;
  
  /**
   * Any of the above, chosen by the request's oneof.
   */
  Run: grpc.handleUnaryCall<_florence2_v1_RunRequest__Output, _florence2_v1_RunResponse>;
  
  /**
   * Polygon masks for a referring expression (<REFERRING_EXPRESSION_SEGMENTATION>) or a region (<REGION_TO_SEGMENTATION>).
   */
  Segment: grpc.handleUnaryCall<_florence2_v1_SegmentRequest__Output, _florence2_v1_SegmentResponse>;
  
  /**
   * High-throughput pipelines: many requests on one call. Each response carries its request_id;
   * responses may arrive in a different order than the requests. A failed request yields an
   * error for its request_id and the stream goes on.
   */
  Stream: grpc.handleBidiStreamingCall<_florence2_v1_StreamRequest__Output, _florence2_v1_StreamResponse>;
  
}

export interface Florence2Definition extends grpc.ServiceDefinition {
  Caption: MethodDefinition<_florence2_v1_CaptionRequest, _florence2_v1_CaptionResponse, _florence2_v1_CaptionRequest__Output, _florence2_v1_CaptionResponse__Output>
  DescribeRegion: MethodDefinition<_florence2_v1_RegionRequest, _florence2_v1_RegionResponse, _florence2_v1_RegionRequest__Output, _florence2_v1_RegionResponse__Output>
  Detect: MethodDefinition<_florence2_v1_DetectRequest, _florence2_v1_DetectResponse, _florence2_v1_DetectRequest__Output, _florence2_v1_DetectResponse__Output>
  DetectOpenVocabulary: MethodDefinition<_florence2_v1_OpenVocabularyRequest, _florence2_v1_OpenVocabularyResponse, _florence2_v1_OpenVocabularyRequest__Output, _florence2_v1_OpenVocabularyResponse__Output>
  GetModelInfo: MethodDefinition<_florence2_v1_GetModelInfoRequest, _florence2_v1_ModelInfo, _florence2_v1_GetModelInfoRequest__Output, _florence2_v1_ModelInfo__Output>
  GroundPhrases: MethodDefinition<_florence2_v1_PhraseGroundingRequest, _florence2_v1_DetectResponse, _florence2_v1_PhraseGroundingRequest__Output, _florence2_v1_DetectResponse__Output>
  Ocr: MethodDefinition<_florence2_v1_OcrRequest, _florence2_v1_OcrResponse, _florence2_v1_OcrRequest__Output, _florence2_v1_OcrResponse__Output>
  Run: MethodDefinition<_florence2_v1_RunRequest, _florence2_v1_RunResponse, _florence2_v1_RunRequest__Output, _florence2_v1_RunResponse__Output>
  Segment: MethodDefinition<_florence2_v1_SegmentRequest, _florence2_v1_SegmentResponse, _florence2_v1_SegmentRequest__Output, _florence2_v1_SegmentResponse__Output>
  Stream: MethodDefinition<_florence2_v1_StreamRequest, _florence2_v1_StreamResponse, _florence2_v1_StreamRequest__Output, _florence2_v1_StreamResponse__Output>
}
