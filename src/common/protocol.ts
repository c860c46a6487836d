/**
 * What crosses the server ↔ worker boundary (structured clone: plain data only). Errors cross as
 * data, never as thrown class instances, so their kind survives the thread boundary.
 */
import type { TaskToken } from 'florence2-client/catalogue';
import type { LogFields, LogLevel } from './logger';
import type { PromptField } from '../florence/prompts';
import type { GenerationOptionError } from '../florence/pipeline';
import type { ResampleMode } from '../florence/preprocess';
import type { DtypeByModule, Provider } from '../runtime/model-files';
import type { PixelRegion } from '../florence/geometry';
import type { ScoredPostProcessResult } from '../florence/postprocess';
import type { StageTimings } from '../florence/pipeline';

/** What a worker thread is started with (Piscina workerData). */
export interface WorkerInit {
  /** The model folder. */
  modelDir: string;
  /** e.g. "cpu:0", "cuda:1": the pool's device, for logs and results. */
  device: string;
  /** onnxruntime execution provider for this device. */
  provider: Provider;
  /** Device index for cuda/tensorrt. */
  deviceId: number;
  /** Fall back to CPU when the provider cannot be loaded. */
  allowCpuFallback: boolean;
  intraOpNumThreads: number;
  /** onnxruntime's CPU memory arena on (faster) or off (smaller). */
  cpuMemoryArena: boolean;
  /** The dtype of each module, as configured (validated by the config loader; `auto` resolved for this device). */
  dtype: DtypeByModule;
  /** What to load when the provider falls back to CPU (`auto` resolved for CPU). */
  cpuFallbackDtype: DtypeByModule;
  resample: ResampleMode;
  maxPixels: number;
  /** Images per vision-encoder call within a batch. */
  maxVisionBatch: number;
  /** Cooperative cancel flags, one Int32 per slot; a task reads `flags[task.cancelSlot]` between decoder steps. */
  cancelFlags: SharedArrayBuffer;
  /** The server's log level, so worker lines follow it. */
  logLevel: LogLevel;
  /** The server's log format, decided for its stderr (a worker's own stderr is never a TTY). */
  logFormat: 'json' | 'pretty';
  /** Pretty lines in colour (the server's stderr is a terminal). */
  logColor: boolean;
  /** Enables test-only behaviour (a request can ask the worker to crash). Never on in production. */
  testHooks: boolean;
}

/** One prompt: a decoder row (or `numBeams` rows) of a batch. */
export interface WorkerRequest {
  image: Uint8Array;
  task: TaskToken;
  text?: string;
  region?: PixelRegion;
}

/** One client request inside a batch: its prompts (open vocabulary: one per class) and its own limits. */
export interface WorkerBatchItem {
  prompts: WorkerRequest[];
  maxNewTokens?: number;
  /** Index into the cancel flags: non-zero there means stop (1 = cancelled, 2 = deadline, 3 = shutdown). */
  cancelSlot: number;
  /** The request's log fields (requestId, traceId), on the worker's lines about it. */
  log?: LogFields;
}

/**
 * A batch of client requests sharing one generation loop (the same number of beams): one vision,
 * encoder and decoder pass for all of them in the worker. Each item is answered on its own, as soon
 * as it is final, with a {@link WorkerOutcomeMessage}; the task's result repeats every outcome.
 */
export interface WorkerTask {
  kind: 'run';
  /** Unique per pool, to route the early outcome messages. */
  batchId: number;
  items: WorkerBatchItem[];
  numBeams?: number;
  /** Test hook: exit the worker thread while the task runs. */
  crash?: boolean;
}

/** Asks a worker for its model facts (used once, for GetModelInfo). */
export interface WorkerInfoTask {
  kind: 'info';
}

/** Why a running request must stop: written by the main thread to its cancel slot, read by the worker between decoder steps. */
export const CANCEL_NONE = 0;
/** The client cancelled the call: the worker reports `cancelled`. */
export const CANCEL_BY_CLIENT = 1;
/** The request's deadline passed: the worker reports `deadline_exceeded`. */
export const CANCEL_BY_DEADLINE = 2;
/**
 * The server is shutting down (the drain's grace period ran out, or the stop was forced): the
 * request was answered UNAVAILABLE, which clients retry elsewhere; the worker reports `unavailable`.
 */
export const CANCEL_BY_SHUTDOWN = 3;

/** A reason a running request is stopped with. */
export type CancelReason = typeof CANCEL_BY_CLIENT | typeof CANCEL_BY_DEADLINE | typeof CANCEL_BY_SHUTDOWN;

export interface WorkerResultItem {
  task: TaskToken;
  result: ScoredPostProcessResult;
  text: string;
  imageSize: { width: number; height: number };
  promptTokens: number;
  generatedTokens: number;
}

/** `unavailable`: stopped for a shutdown (CANCEL_BY_SHUTDOWN); retryable on another instance. */
export type WorkerErrorKind = 'invalid_argument' | 'cancelled' | 'deadline_exceeded' | 'unavailable' | 'internal';

/**
 * The input at fault in an invalid_argument error, in the library's names (prompt fields, `image`,
 * generation options); the server maps them to request fields (validate.ts `requestField`).
 */
export type WorkerErrorField = PromptField | 'image' | GenerationOptionError['field'];

/** A failure as data (errors cross the thread boundary as plain objects). */
export interface WorkerError {
  kind: WorkerErrorKind;
  message: string;
  field?: WorkerErrorField;
  /**
   * Set when the worker itself is unusable (its model failed to load when piscina replaced a dead
   * worker), so it can serve nothing: the pool answers UNAVAILABLE, not INTERNAL.
   */
  workerFailed?: boolean;
}

/** What one batch was, for every request of it and for metrics. */
export interface BatchShape {
  /** Client requests in the batch. */
  requests: number;
  /** Decoder rows at the first step (prompts × beams). */
  rows: number;
}

/** The answer to one item of a batch. */
export type WorkerItemOutcome =
  | {
      ok: true;
      items: WorkerResultItem[];
      /** preprocess, vision and encoder were shared by the batch; decoder, postprocess and total are this item's own. */
      timings: StageTimings;
      /** Decoder steps this item's rows took part in. */
      steps: number;
      /**
       * When the batch started in the worker, epoch ms (`performance.timeOrigin + performance.now()`,
       * comparable across threads): the origin of `timings`, from which the main thread places the
       * stage spans of a trace.
       */
      startedAt: number;
    }
  | { ok: false; error: WorkerError };

/** Per-batch figures for metrics: decoder time and rows per step. */
export interface BatchStats extends BatchShape {
  /** Decoder steps of the whole batch. */
  steps: number;
  /** Sum over steps of the rows decoded: rowSteps / steps is the mean rows per step. */
  rowSteps: number;
  /** Wall time of the generation loop. */
  decodeMs: number;
  /** The part of `decodeMs` inside `session.run` (token embedding and decoder); the rest is our per-step work. */
  decoderRunMs: number;
  /** Bytes that crossed `session.run` in host memory during the decoder steps (src/runtime/transfers.ts). */
  decoderBytes: { hostToDevice: number; deviceToHost: number };
  /** The stages every request of the batch shared, in milliseconds. */
  shared: Pick<StageTimings, 'preprocess' | 'vision' | 'encoder'>;
}

export type WorkerResult =
  | { ok: true; outcomes: WorkerItemOutcome[]; batch: BatchStats; device: string }
  /** The whole batch failed (the model could not run it at all). */
  | { ok: false; error: WorkerError };

/** Posted on the worker's parentPort (piscina re-emits it on the pool) as soon as one item is final. */
export interface WorkerOutcomeMessage {
  florence2: 'outcome';
  batchId: number;
  index: number;
  outcome: WorkerItemOutcome;
}

export interface WorkerModelInfo {
  name: string;
  files: Record<string, string>;
  defaultNumBeams: number;
  defaultMaxNewTokens: number;
  maxPositions: number;
  provider: string;
}

/**
 * What a worker posts on its `parentPort` (piscina re-emits it as the pool's 'message' event) once its
 * init has ended: 'ready' after the model loaded and the warm-up generation ran, 'init-failed'
 * otherwise. Tagged with `florence2` so other messages are told apart.
 */
export type WorkerLifecycleMessage =
  | { florence2: 'ready'; threadId: number; device: string; info: WorkerModelInfo; fallback: boolean; warmupMs: number }
  | { florence2: 'init-failed'; threadId: number; device: string; message: string };
