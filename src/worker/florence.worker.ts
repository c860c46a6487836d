/**
 * The Piscina worker entry: one thread's life. Async init loads the model for the pool's device
 * (with an explicit CPU fallback when allowed, since onnxruntime never falls back by itself), runs
 * one warm-up generation, reports 'ready' to the pool and only then hands piscina the handler. The
 * handler never throws: request failures cross the thread boundary as data (`{ ok: false, error }`).
 *
 * Loadable as TypeScript (under `--import tsx`, which piscina workers inherit via execArgv) and as
 * compiled JS: it is a CommonJS module whose `default` export is a promise of the handler.
 */
import { isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { createLogger, type Logger } from '../common/logger';
import { Florence2, GenerationOptionError, GenerationStopped, ImageDecodeError, PromptError } from '../index';
import type { RunResult, StageTimings } from '../index';
import { executionProvidersFor } from '../runtime/ort-backend';
import {
  CANCEL_BY_CLIENT,
  CANCEL_BY_DEADLINE,
  CANCEL_BY_SHUTDOWN,
  CANCEL_NONE,
  type WorkerInfoTask,
  type WorkerInit,
  type WorkerLifecycleMessage,
  type WorkerModelInfo,
  type WorkerResult,
  type WorkerItemOutcome,
  type WorkerOutcomeMessage,
  type WorkerTask,
} from '../common/protocol';

/** What the handler answers: a run result for 'run', the model facts for 'info'. */
export type WorkerReply = WorkerResult | WorkerModelInfo;

/** The piscina task handler of this worker. Never rejects. */
export type WorkerHandler = (task: WorkerTask | WorkerInfoTask) => Promise<WorkerReply>;

/** The worker's logger: the server's format and level, on this thread's stderr (which the process shares). */
let logger: Logger = createLogger({ level: 'info' });

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads the model on the init's device. A provider that cannot load (missing CUDA libraries, no
 * WebGPU adapter) fails the start with a message naming the device and the provider's error, or,
 * with `allowCpuFallback`, loads again on CPU and logs a warning.
 */
async function loadModel(init: WorkerInit): Promise<{ model: Florence2; provider: string; fallback: boolean }> {
  const common = {
    intraOpNumThreads: init.intraOpNumThreads,
    cpuMemoryArena: init.cpuMemoryArena,
    dtype: init.dtype,
    resample: init.resample,
    maxPixels: init.maxPixels,
    maxVisionBatch: init.maxVisionBatch,
  };
  try {
    const model = await Florence2.load(init.modelDir, {
      ...common,
      executionProviders: executionProvidersFor(init.provider, init.deviceId),
    });
    return { model, provider: init.provider, fallback: false };
  } catch (err) {
    const what = `cannot load the model on ${init.device} with the ${init.provider} execution provider${init.provider === 'cuda' || init.provider === 'tensorrt' ? ` (device ${init.deviceId})` : ''}: ${errorMessage(err)}`;
    if (init.provider === 'cpu') throw new Error(what, { cause: err });
    if (!init.allowCpuFallback) throw new Error(`${what}. Set allowCpuFallback to run on CPU instead.`, { cause: err });
    logger.warn('execution provider unavailable; falling back to CPU', { provider: init.provider, error: errorMessage(err) });
    try {
      const model = await Florence2.load(init.modelDir, { ...common, dtype: init.cpuFallbackDtype, executionProviders: ['cpu'] });
      return { model, provider: 'cpu', fallback: true };
    } catch (cpuErr) {
      throw new Error(`${what}; the CPU fallback failed too: ${errorMessage(cpuErr)}`, { cause: cpuErr });
    }
  }
}

/** One short generation so the first real request does not pay for lazy allocations and kernel setup. */
async function warmUp(model: Florence2): Promise<void> {
  // A generated PNG (not raw pixels) so the decode path is warmed as well.
  const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 90, g: 140, b: 200 } } })
    .png()
    .toBuffer();
  await model.run({ image, task: '<CAPTION>' }, { generation: { maxNewTokens: 2 } });
}

/** A request failure as protocol data: client mistakes name the request field, stops say why. */
export function toWorkerError(err: unknown, stopFlag: number): Extract<WorkerResult, { ok: false }>['error'] {
  // Fields keep the library's names; the server maps them to the request's (one place: validate.ts).
  if (err instanceof PromptError) return { kind: 'invalid_argument', field: err.field, message: err.message };
  if (err instanceof ImageDecodeError) return { kind: 'invalid_argument', field: 'image', message: err.message };
  if (err instanceof GenerationOptionError) return { kind: 'invalid_argument', field: err.field, message: err.message };
  if (err instanceof GenerationStopped) {
    switch (stopFlag) {
      case CANCEL_BY_DEADLINE:
        return { kind: 'deadline_exceeded', message: `deadline exceeded; ${err.message}` };
      case CANCEL_BY_SHUTDOWN:
        return { kind: 'unavailable', message: `stopped for the server's shutdown; ${err.message}` };
      case CANCEL_BY_CLIENT:
        return { kind: 'cancelled', message: `cancelled by the client; ${err.message}` };
      default:
        // Stopped without a flag: a batch-mate prompt of the same item failed first.
        return { kind: 'cancelled', message: `stopped; ${err.message}` };
    }
  }
  return { kind: 'internal', message: errorMessage(err) };
}

/** One item's outcome from its prompts' outcomes (open vocabulary: one prompt per class). */
function itemOutcome(results: RunResult[], startedAt: number): WorkerItemOutcome {
  const first = results[0];
  const timings: StageTimings = {
    // The batch's shared stages are the same for every prompt.
    preprocess: first.timings.preprocess,
    vision: first.timings.vision,
    encoder: first.timings.encoder,
    decoder: Math.max(...results.map((r) => r.timings.decoder)),
    postprocess: results.reduce((s, r) => s + r.timings.postprocess, 0),
    total: Math.max(...results.map((r) => r.timings.total)),
  };
  return {
    ok: true,
    items: results.map((r) => ({
      task: r.task,
      result: r.result,
      text: r.text,
      imageSize: r.imageSize,
      promptTokens: r.promptTokens,
      generatedTokens: r.generatedTokens,
    })),
    timings,
    steps: Math.max(...results.map((r) => r.batch.steps)),
    startedAt,
  };
}

/**
 * Runs one batch: the prompts of every item flattened into one pipeline call, each prompt stopped by
 * its item's cancel slot, and each item answered (posted on parentPort) as soon as all its prompts
 * are final; one failed prompt fails its item and stops the item's other prompts.
 */
async function runTask(init: WorkerInit, model: Florence2, flags: Int32Array, task: WorkerTask): Promise<WorkerResult> {
  const prompts = task.items.flatMap((item) => item.prompts);
  const itemOf = task.items.flatMap((item, i) => item.prompts.map(() => i));
  // Filled, not sparse: every() skips the holes of a sparse array.
  const results = task.items.map((item) => Array.from<RunResult | undefined>({ length: item.prompts.length }));
  const firstPrompt = task.items.map((_, i) => itemOf.indexOf(i));
  const outcomes = new Array<WorkerItemOutcome | undefined>(task.items.length);
  const finish = (i: number, outcome: WorkerItemOutcome) => {
    if (outcomes[i]) return;
    outcomes[i] = outcome;
    // The request's own line from this thread, with its requestId and traceId (item.log).
    logger.debug('request final in its batch', {
      ...task.items[i].log,
      batchId: task.batchId,
      batchRequests: task.items.length,
      ...(outcome.ok ? { steps: outcome.steps, ms: Math.round(outcome.timings.total) } : { error: outcome.error.kind }),
    });
    const message: WorkerOutcomeMessage = { florence2: 'outcome', batchId: task.batchId, index: i, outcome };
    parentPort?.postMessage(message);
  };
  const t0 = performance.now();
  const startedAt = performance.timeOrigin + t0;
  const run0 = model.decoderRunMs;
  const bytes0 = model.decoderBytes;
  const settled = await model.runBatchSettled(prompts, {
    generation: { numBeams: task.numBeams },
    items: prompts.map((_, p) => {
      const item = task.items[itemOf[p]];
      return {
        maxNewTokens: item.maxNewTokens,
        shouldStop: () => outcomes[itemOf[p]] !== undefined || Atomics.load(flags, item.cancelSlot) !== CANCEL_NONE,
      };
    }),
    onOutcome: (p, outcome) => {
      const i = itemOf[p];
      if (outcomes[i]) return;
      if (!outcome.ok) return finish(i, { ok: false, error: toWorkerError(outcome.error, Atomics.load(flags, task.items[i].cancelSlot)) });
      results[i][p - firstPrompt[i]] = outcome.result;
      const all = results[i];
      if (all.every((r) => r !== undefined)) finish(i, itemOutcome(all, startedAt));
    },
  });
  const decodeMs = performance.now() - t0;
  const decoderRunMs = model.decoderRunMs - run0;
  const bytes1 = model.decoderBytes;
  const decoderBytes = { hostToDevice: bytes1.hostToDevice - bytes0.hostToDevice, deviceToHost: bytes1.deviceToHost - bytes0.deviceToHost };
  // Every item is final once the call returns; outcomes the callbacks missed come from its result.
  settled.forEach((outcome, p) => {
    const i = itemOf[p];
    if (outcomes[i]) return;
    if (!outcome.ok) finish(i, { ok: false, error: toWorkerError(outcome.error, Atomics.load(flags, task.items[i].cancelSlot)) });
    else results[i][p - firstPrompt[i]] = outcome.result;
  });
  task.items.forEach((_, i) => {
    if (!outcomes[i]) finish(i, itemOutcome(results[i] as RunResult[], startedAt));
  });
  const ran = settled.flatMap((o) => (o.ok ? [o.result] : []));
  const shared = ran[0]?.timings ?? { preprocess: 0, vision: 0, encoder: 0 };
  const beams = Math.max(1, ...ran.map((r) => (r.batch.requests > 0 ? r.batch.rows / r.batch.requests : 1)));
  return {
    ok: true,
    outcomes: outcomes as WorkerItemOutcome[],
    batch: {
      requests: task.items.length,
      rows: ran[0]?.batch.rows ?? 0,
      steps: Math.max(0, ...ran.map((r) => r.batch.steps)),
      rowSteps: ran.reduce((s, r) => s + r.batch.steps * beams, 0),
      decodeMs: Math.max(0, ...ran.map((r) => r.timings.decoder)) || decodeMs,
      decoderRunMs,
      decoderBytes,
      shared: { preprocess: shared.preprocess, vision: shared.vision, encoder: shared.encoder },
    },
    device: init.device,
  };
}

function makeHandler(init: WorkerInit, model: Florence2, info: WorkerModelInfo): WorkerHandler {
  const flags = new Int32Array(init.cancelFlags);
  return async (task) => {
    if (task.kind === 'info') return info;
    const bad = task.items.find((item) => !Number.isInteger(item.cancelSlot) || item.cancelSlot < 0 || item.cancelSlot >= flags.length);
    if (bad) return { ok: false, error: { kind: 'internal', message: `cancel slot ${bad.cancelSlot} is outside [0, ${flags.length})` } };
    // Test hook: end this thread as a native crash would. In a worker thread process.exit ends only
    // the thread. It runs before any session.run is in flight (terminating mid-run aborts the process).
    if (init.testHooks && task.crash) process.exit(1);
    try {
      return await runTask(init, model, flags, task);
    } catch (err) {
      // The model could not run the batch at all (a backend failure): every item fails.
      return { ok: false, error: { kind: 'internal', message: errorMessage(err) } };
    }
  };
}

function post(message: WorkerLifecycleMessage): void {
  parentPort?.postMessage(message);
}

/**
 * 1) load, 2) warm up, 3) report. On failure the worker reports 'init-failed' and serves a handler
 * that answers every task with `workerFailed`: a rejected export would make piscina retry the file
 * as an ES module and lose the original error, and an exiting worker would leave queued tasks hanging.
 */
async function start(): Promise<WorkerHandler> {
  const init = workerData as WorkerInit;
  logger = createLogger({
    level: init.logLevel,
    format: init.logFormat,
    colorize: init.logColor,
    fields: { device: init.device, thread: threadId },
  });
  const t0 = performance.now();
  try {
    const { model, provider, fallback } = await loadModel(init);
    const c = model.config;
    const info: WorkerModelInfo = {
      name: c.name,
      files: { ...model.files },
      defaultNumBeams: c.generation.numBeams,
      defaultMaxNewTokens: c.generation.maxNewTokens,
      maxPositions: c.dims.maxPositions,
      provider,
    };
    const t1 = performance.now();
    await warmUp(model);
    const warmupMs = performance.now() - t1;
    logger.info('worker ready', { provider, loadMs: Math.round(t1 - t0), warmupMs: Math.round(warmupMs) });
    post({ florence2: 'ready', threadId, device: init.device, info, fallback, warmupMs });
    return makeHandler(init, model, info);
  } catch (err) {
    const message = `worker on ${init.device} failed to start: ${errorMessage(err)}`;
    logger.error('worker failed to start', { error: errorMessage(err) });
    post({ florence2: 'init-failed', threadId, device: init.device, message });
    return async () => ({ ok: false, error: { kind: 'internal', message, workerFailed: true } });
  }
}

/** Imported outside a worker (e.g. for its helpers), it starts nothing. */
const notInWorker: WorkerHandler = async () => ({
  ok: false,
  error: { kind: 'internal', message: 'florence.worker must run in a piscina worker thread' },
});

export default isMainThread ? Promise.resolve(notInWorker) : start();
