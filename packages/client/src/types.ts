/**
 * The client's public types: friendly inputs (file paths or bytes, camelCase options, string
 * enums) and plain, fully populated results. Coordinates are pixels of the image after EXIF
 * orientation, origin at the top-left.
 */
import type * as grpc from '@grpc/grpc-js';
import type { SelectorValue, TaskFamily } from './catalogue';

/** An encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF) as bytes, or the path of such a file. */
export type ImageInput = Buffer | Uint8Array | string;

/** A box in pixels: top-left (x1, y1), bottom-right (x2, y2). */
export interface Region {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** A region as an object or as `[x1, y1, x2, y2]`. */
export type RegionInput = Region | readonly [number, number, number, number];

/** Per-call transport options. */
export interface CallOptions {
  /** Deadline from now, across all retries. Default: the client's `defaultDeadlineMs` (unary calls only). */
  deadlineMs?: number;
  /** Aborting cancels the call (and any pending retry) with a CancelledError. */
  signal?: AbortSignal;
  /** Request metadata (headers). */
  metadata?: grpc.Metadata | Record<string, string | string[]>;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
}

/** Generation options (Options in the proto); unset = the server's defaults. */
export interface GenerationOptions {
  /** Beam width (at most the server's max_num_beams). */
  numBeams?: number;
  /** Upper bound on generated tokens (at most the server's max_new_tokens). */
  maxNewTokens?: number;
  /** Return the model's decoded output in `meta.rawText`. */
  includeRawText?: boolean;
  /** Return confidence scores; otherwise results have no `score`. */
  includeScores?: boolean;
}

/** Options of every task method. */
export type RequestOptions = CallOptions & GenerationOptions;

export type CaptionDetail = SelectorValue<'caption'>;
export type DetectKind = SelectorValue<'detect'>;
export type RegionTask = SelectorValue<'region'>;

/** What Segment segments: a referring expression or a region. */
export type SegmentTarget = { referringExpression: string; region?: undefined } | { region: RegionInput; referringExpression?: undefined };

/** The task families: the oneof names of RunRequest / RunResponse. */
export type { TaskFamily };

interface RequestBase {
  image: ImageInput;
  options?: GenerationOptions;
}

/** A request for {@link Florence2Client.run} and streams, chosen by `family`. */
export type TaskRequest =
  | (RequestBase & { family: 'caption'; detail?: CaptionDetail })
  | (RequestBase & { family: 'detect'; kind?: DetectKind })
  | (RequestBase & { family: 'open_vocabulary'; classes: readonly string[] })
  | (RequestBase & { family: 'phrase_grounding'; caption: string })
  | (RequestBase & { family: 'segment' } & SegmentTarget)
  | (RequestBase & { family: 'ocr'; withRegions?: boolean })
  | (RequestBase & { family: 'region'; region: RegionInput; task?: RegionTask });

/** A detected box. `label` is empty for region proposals; `score` is there when scores were asked for. */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  label: string;
  /** Confidence in (0, 1], with `includeScores` only. */
  score?: number;
}

/** A text line and its quadrilateral: `points` is x1, y1, ..., x4, y4, clockwise from the top-left. */
export interface QuadBox {
  points: number[];
  text: string;
  /** With `includeScores` only. */
  score?: number;
}

/** A segmented instance: polygons as flat x, y lists (an object may have several parts). */
export interface SegmentInstance {
  polygons: number[][];
  label: string;
  /** With `includeScores` only. */
  score?: number;
}

/** Server time per stage, in milliseconds. */
export interface Timings {
  queueMs: number;
  preprocessMs: number;
  visionMs: number;
  encoderMs: number;
  decodeMs: number;
  postprocessMs: number;
  totalMs: number;
}

/** How a response was produced. */
export interface ResponseMeta {
  timings: Timings;
  promptTokens: number;
  generatedTokens: number;
  /** The model's decoded output, with `includeRawText` only. */
  rawText?: string;
  imageWidth: number;
  imageHeight: number;
  /** The server's id for the request (also in its logs). */
  requestId: string;
  /** The device that ran it, e.g. "cpu:0". */
  device: string;
}

export interface CaptionResult {
  family: 'caption';
  text: string;
  meta: ResponseMeta;
}
export interface DetectResult {
  family: 'detect';
  boxes: Box[];
  meta: ResponseMeta;
}
export interface OpenVocabularyResult {
  family: 'open_vocabulary';
  /** Boxes labelled with the class that was asked for. */
  boxes: Box[];
  /** Instances the model answered with polygons instead of boxes. */
  instances: SegmentInstance[];
  meta: ResponseMeta;
}
export interface PhraseGroundingResult {
  family: 'phrase_grounding';
  boxes: Box[];
  meta: ResponseMeta;
}
export interface SegmentResult {
  family: 'segment';
  instances: SegmentInstance[];
  meta: ResponseMeta;
}
export interface OcrResult {
  family: 'ocr';
  /** The text (without regions only). */
  text: string;
  /** Text lines with quadrilaterals (with regions only). */
  lines: QuadBox[];
  meta: ResponseMeta;
}
export interface RegionResult {
  family: 'region';
  text: string;
  meta: ResponseMeta;
}

/** Any task's result, discriminated by `family`. */
export type TaskResult =
  CaptionResult | DetectResult | OpenVocabularyResult | PhraseGroundingResult | SegmentResult | OcrResult | RegionResult;

/** The result type of a request family. */
export type ResultOf<F extends TaskFamily> = Extract<TaskResult, { family: F }>;

/** A device the server runs workers on. */
export interface DeviceInfo {
  name: string;
  provider: string;
  workers: number;
}

/** Server limits; requests beyond them get INVALID_ARGUMENT. */
export interface ServerLimits {
  maxImagePixels: number;
  maxMessageBytes: number;
  maxNumBeams: number;
  maxNewTokens: number;
  maxTextChars: number;
  maxClasses: number;
}

/** The served model (GetModelInfo). */
export interface ModelInfo {
  model: string;
  /** `<owner>/<name>@<commit>` for a Hub download, `local` for a folder. */
  revision: string;
  files: Record<string, string>;
  devices: DeviceInfo[];
  limits: ServerLimits;
  defaultNumBeams: number;
  defaultMaxNewTokens: number;
  tasks: string[];
  serverVersion: string;
  onnxruntimeVersion: string;
  nodeVersion: string;
}

/** grpc.health.v1 serving status. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
