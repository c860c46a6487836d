/**
 * Every metric of the server, defined once, on one prom-client registry owned by the main thread.
 * Workers cannot record (prom-client registries are per thread); they return timings and token
 * counts in their results, and the server records them here. Label values come from fixed sets
 * (task tokens, gRPC status names, stages) or from the configured device names, so series stay bounded.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TASKS, TASK_TOKENS } from 'florence2-client/catalogue';
import type { StageTimings } from '../florence/pipeline';

/** Prefix of every metric name, the Node process metrics included. */
export const METRIC_PREFIX = 'florence2_';

/** Why a call was refused before validation, as labelled on `florence2_refused_calls_total` (guard.ts). */
export const REFUSAL_REASONS = ['unauthenticated', 'client_limit', 'memory_budget', 'receive_timeout'] as const;

/** Pipeline stages, as labelled on `florence2_stage_duration_seconds`. */
export const STAGES = ['preprocess', 'vision', 'encoder', 'decode', 'postprocess'] as const;

/** One of {@link STAGES}. */
export type Stage = (typeof STAGES)[number];

/** gRPC status names, the only values of the `code` label (anything else is recorded as `UNKNOWN`). */
export const GRPC_CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/** Task label values, from the catalogue: each task token without angle brackets, lowercased (`<OD>` → `od`). */
export const TASK_LABELS: readonly string[] = Object.freeze(TASK_TOKENS.map((t) => TASKS[t].label));

const TASK_LABEL_SET = new Set(TASK_LABELS);
const CODE_SET = new Set<string>(GRPC_CODE_NAMES);

/**
 * The `task` label for a task string: `<OD>`, `OD` and `od` all give `od`; anything that is not a
 * Florence-2 task gives `unknown`, so client input can never create new series.
 */
export function taskLabel(task: string): string {
  const t = task
    .trim()
    .replace(/^<(.*)>$/, '$1')
    .toLowerCase();
  return TASK_LABEL_SET.has(t) ? t : 'unknown';
}

/** The `code` label for a gRPC status name (`ok` → `OK`); unrecognised names give `UNKNOWN`. */
export function codeLabel(code: string): string {
  const c = code.trim().toUpperCase();
  return CODE_SET.has(c) ? c : 'UNKNOWN';
}

/** One device pool's state at scrape time. */
export interface DeviceGauges {
  /** Device name from the config, e.g. `cuda:0`. */
  device: string;
  /** Requests running on the pool. */
  inFlight: number;
  /** Requests waiting for the pool. */
  queued: number;
  /** Fraction of the last window the pool's workers were busy, 0..1. */
  busyRatio: number;
  /** Live workers in the pool. */
  workers: number;
}

/** Model identity for `florence2_model_info`. */
export interface ModelInfoLabels {
  /** Model name or path. */
  model: string;
  /** Dtype summary, e.g. `fp32` or `vision_encoder=fp16,...`. */
  dtype: string;
  /** This server's version. */
  serverVersion: string;
}

/** Options for {@link Metrics}. */
export interface MetricsOptions {
  /** Also export prom-client's Node process metrics under their standard names (`process_*`, `nodejs_*`); default true. */
  processMetrics?: boolean;
}

/** Request latency: from a fast caption on a GPU (~5 ms of overhead) to a long CPU generation (~2 min). */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];
/** Queue wait: mostly zero, up to the time a full queue takes to drain. */
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Batch sizes in requests or rows: powers of two up to the largest batch a GPU takes. */
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** One stage: from a sub-millisecond post-process to a long CPU decode. */
const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** A finite, non-negative number, else null (a bad timing must not throw inside request handling). */
const nonNegative = (x: number): number | null => (Number.isFinite(x) && x >= 0 ? x : null);

/** The server's metrics. Create one per process (tests may create several: each has its own registry). */
export class Metrics {
  /** The registry every metric is registered on. */
  readonly registry: Registry;

  private readonly requests: Counter<'task' | 'code'>;
  private readonly requestDuration: Histogram<'task'>;
  private readonly queueWait: Histogram<'device'>;
  private readonly stageDuration: Histogram<'stage'>;
  private readonly generatedTokens: Counter<'task'>;
  private readonly promptTokens: Counter<'task'>;
  private readonly workerRestarts: Counter<'device'>;
  private readonly batchRequests: Histogram<'device'>;
  private readonly batchRows: Histogram<'device'>;
  private readonly batchWait: Histogram<'device'>;
  private readonly decoderStep: Histogram<'device'>;
  private readonly rowsPerStep: Histogram<'device'>;
  private readonly decoderLoop: Counter<'device'>;
  private readonly decoderRun: Counter<'device'>;
  private readonly decoderTransfer: Counter<'device' | 'direction'>;
  private readonly modelInfo: Gauge<'model' | 'dtype' | 'server_version'>;
  private deviceSource: () => readonly DeviceGauges[] = () => [];

  constructor(options: MetricsOptions = {}) {
    const registers = [(this.registry = new Registry())];
    const p = METRIC_PREFIX;
    this.requests = new Counter({
      name: `${p}requests_total`,
      help: 'Requests finished, by task and gRPC status code.',
      labelNames: ['task', 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: `${p}request_duration_seconds`,
      help: 'Time from arrival to response, by task (all status codes).',
      labelNames: ['task'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: `${p}queue_wait_seconds`,
      help: 'Time a request waited for a worker of its device pool.',
      labelNames: ['device'],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.stageDuration = new Histogram({
      name: `${p}stage_duration_seconds`,
      help: 'Time per pipeline stage of one worker call (preprocess, vision, encoder, decode, postprocess).',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.batchRequests = new Histogram({
      name: `${p}batch_size_requests`,
      help: 'Client requests per worker batch, by device.',
      labelNames: ['device'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.batchRows = new Histogram({
      name: `${p}batch_size_rows`,
      help: 'Decoder rows (prompts × beams) per worker batch at its first step, by device.',
      labelNames: ['device'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.batchWait = new Histogram({
      name: `${p}batch_wait_seconds`,
      help: 'Time a request waited, with a worker free, for its batch to gather (--max-queue-delay-ms), by device.',
      labelNames: ['device'],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.decoderStep = new Histogram({
      name: `${p}decoder_step_seconds`,
      help: 'Mean time of one decoder step (all rows of a batch), one observation per batch, by device.',
      labelNames: ['device'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.rowsPerStep = new Histogram({
      name: `${p}decoder_rows_per_step`,
      help: 'Mean decoder rows per step, one observation per batch, by device.',
      labelNames: ['device'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.decoderLoop = new Counter({
      name: `${p}decoder_loop_seconds_total`,
      help: 'Time in generation loops (all decoder steps of all batches), by device.',
      labelNames: ['device'],
      registers,
    });
    this.decoderRun = new Counter({
      name: `${p}decoder_run_seconds_total`,
      help: 'The part of decoder_loop_seconds_total inside onnxruntime session.run; the rest is per-step logits, beam and cache work.',
      labelNames: ['device'],
      registers,
    });
    this.decoderTransfer = new Counter({
      name: `${p}decoder_transfer_bytes_total`,
      help: 'Bytes that crossed onnxruntime session.run in host memory during decoder steps, by direction: on a GPU the host-device traffic (decoder state kept on a WebGPU device leaves token ids in and logits out); on CPU what a device would be sent.',
      labelNames: ['device', 'direction'],
      registers,
    });
    this.generatedTokens = new Counter({
      name: `${p}generated_tokens_total`,
      help: 'Tokens generated by the decoder, by task.',
      labelNames: ['task'],
      registers,
    });
    this.promptTokens = new Counter({
      name: `${p}prompt_tokens_total`,
      help: 'Prompt tokens fed to the encoder, by task.',
      labelNames: ['task'],
      registers,
    });
    this.workerRestarts = new Counter({
      name: `${p}worker_restarts_total`,
      help: 'Workers that died and were replaced, by device.',
      labelNames: ['device'],
      registers,
      // Exporting 0 for every device lets rate() and alerts see the series before the first restart.
      collect: () => {
        for (const d of this.readDevices()) this.workerRestarts.inc({ device: d.device }, 0);
      },
    });
    this.modelInfo = new Gauge({
      name: `${p}model_info`,
      help: 'The served model; always 1, the labels carry the information.',
      labelNames: ['model', 'dtype', 'server_version'],
      registers,
    });

    // Device gauges are read from the scheduler when scraped, so they are never stale between requests.
    const deviceGauge = (name: string, help: string, pick: (d: DeviceGauges) => number): void => {
      const gauge: Gauge<'device'> = new Gauge({
        name: `${p}${name}`,
        help,
        labelNames: ['device'],
        registers,
        collect: () => {
          gauge.reset();
          for (const d of this.readDevices()) {
            const v = pick(d);
            if (Number.isFinite(v)) gauge.set({ device: d.device }, v);
          }
        },
      });
    };
    deviceGauge('inflight_requests', 'Requests running, by device.', (d) => d.inFlight);
    deviceGauge('queued_requests', 'Requests waiting for a worker, by device.', (d) => d.queued);
    deviceGauge('worker_busy_ratio', 'Fraction of time the workers of a device were busy (0..1).', (d) =>
      Math.min(1, Math.max(0, d.busyRatio)),
    );
    deviceGauge('workers', 'Live worker threads, by device.', (d) => d.workers);

    this.refused = new Counter({
      name: `${p}refused_calls_total`,
      help: 'Calls and Stream requests refused before validation: unauthenticated, client_limit, memory_budget, receive_timeout.',
      labelNames: ['reason'],
      registers,
    });
    for (const r of REFUSAL_REASONS) this.refused.inc({ reason: r }, 0);
    this.rejectedMessages = new Counter({
      name: `${p}rejected_messages_total`,
      help: 'Request messages refused without decoding them: malformed (does not parse, or bad compressed data) or limit (a field over its limit), answered INVALID_ARGUMENT; size (over the message size limit, found while decompressing), answered RESOURCE_EXHAUSTED.',
      labelNames: ['reason'],
      registers,
    });
    for (const r of ['malformed', 'limit', 'size']) this.rejectedMessages.inc({ reason: r }, 0);
    new Gauge({
      name: `${p}request_memory_bytes`,
      help: 'Request bytes held against the request memory budget (--request-memory-bytes).',
      registers,
      collect: function () {
        this.set(readBudget().usedBytes);
      },
    });
    new Gauge({
      name: `${p}request_memory_budget_bytes`,
      help: 'The request memory budget (--request-memory-bytes).',
      registers,
      collect: function () {
        this.set(readBudget().totalBytes);
      },
    });
    const readBudget = () => this.budgetSource?.() ?? { usedBytes: 0, totalBytes: 0 };
    // Sampled every 5 ms; p99 and max cover the time since the previous scrape.
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const loopGauge = new Gauge({
      name: `${p}event_loop_delay_seconds`,
      help: 'Main-thread event-loop delay since the previous scrape (quantile 0.5, 0.99 and 1 = max); no request may block it for more than 50 ms.',
      labelNames: ['quantile'],
      registers,
      collect: () => {
        loopGauge.set({ quantile: '0.5' }, loop.count > 0 ? loop.percentile(50) / 1e9 : 0);
        loopGauge.set({ quantile: '0.99' }, loop.count > 0 ? loop.percentile(99) / 1e9 : 0);
        loopGauge.set({ quantile: '1' }, loop.count > 0 ? loop.max / 1e9 : 0);
        loop.reset();
      },
    });

    // Under their standard names (process_cpu_seconds_total, nodejs_heap_size_used_bytes): stock
    // Node.js dashboards and alerts query those, so they carry no florence2_ prefix.
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts a call or Stream request refused before validation. */
  recordRefused(reason: (typeof REFUSAL_REASONS)[number]): void {
    this.refused.inc({ reason });
  }

  /** Counts a request message answered INVALID_ARGUMENT without being decoded. */
  recordRejectedMessage(reason: 'malformed' | 'limit' | 'size'): void {
    this.rejectedMessages.inc({ reason });
  }

  /** Sets where the request memory gauges come from; read at every scrape. */
  setBudgetSource(fn: () => { usedBytes: number; totalBytes: number }): void {
    this.budgetSource = fn;
  }

  /** Content-Type of {@link metricsText} (Prometheus text exposition format). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Records one finished request: its task (token or label), gRPC status name and total seconds. */
  recordRequest(task: string, code: string, seconds: number): void {
    const t = taskLabel(task);
    this.requests.inc({ task: t, code: codeLabel(code) });
    const s = nonNegative(seconds);
    if (s !== null) this.requestDuration.observe({ task: t }, s);
  }

  /** Records how long a request waited in a device pool's queue. */
  recordQueueWait(device: string, seconds: number): void {
    const s = nonNegative(seconds);
    if (s !== null) this.queueWait.observe({ device }, s);
  }

  /**
   * Records per-stage times (milliseconds) a worker returned; `decoder` is labelled `decode`. Stages
   * a batch shares (preprocess, vision, encoder) are recorded once per batch, a request's own
   * (decoder, postprocess) once per request: pass each its own subset.
   */
  recordStages(timings: Partial<Omit<StageTimings, 'total'>>): void {
    const byStage: Record<Stage, number | undefined> = {
      preprocess: timings.preprocess,
      vision: timings.vision,
      encoder: timings.encoder,
      decode: timings.decoder,
      postprocess: timings.postprocess,
    };
    for (const stage of STAGES) {
      if (byStage[stage] === undefined) continue;
      const ms = nonNegative(byStage[stage]);
      if (ms !== null) this.stageDuration.observe({ stage }, ms / 1000);
    }
  }

  /** Adds a request's prompt and generated token counts. */
  recordTokens(task: string, prompt: number, generated: number): void {
    const t = taskLabel(task);
    const pr = nonNegative(prompt);
    const gen = nonNegative(generated);
    if (pr !== null) this.promptTokens.inc({ task: t }, pr);
    if (gen !== null) this.generatedTokens.inc({ task: t }, gen);
  }

  /** Records one worker batch as it starts: its size in requests and rows. */
  recordBatch(device: string, requests: number, rows: number): void {
    this.batchRequests.observe({ device }, requests);
    this.batchRows.observe({ device }, rows);
  }

  /** Records how long a request waited for its batch to gather while a worker was free. */
  recordBatchWait(device: string, seconds: number): void {
    const s = nonNegative(seconds);
    if (s !== null) this.batchWait.observe({ device }, s);
  }

  /** Records a finished batch's decoder figures: mean step time, mean rows per step, time inside session.run. */
  recordDecoderSteps(device: string, steps: number, rowSteps: number, decodeMs: number, runMs: number): void {
    if (!(steps > 0)) return;
    const loop = nonNegative(decodeMs);
    const run = nonNegative(runMs);
    if (loop !== null && run !== null) {
      this.decoderLoop.inc({ device }, loop / 1000);
      this.decoderRun.inc({ device }, Math.min(run, loop) / 1000);
    }
    const ms = nonNegative(decodeMs / steps);
    if (ms !== null) this.decoderStep.observe({ device }, ms / 1000);
    const rows = nonNegative(rowSteps / steps);
    if (rows !== null) this.rowsPerStep.observe({ device }, rows);
  }

  /** Adds a batch's decoder transfer bytes. */
  recordDecoderTransfers(device: string, bytes: { hostToDevice: number; deviceToHost: number }): void {
    const h2d = nonNegative(bytes.hostToDevice);
    const d2h = nonNegative(bytes.deviceToHost);
    if (h2d !== null) this.decoderTransfer.inc({ device, direction: 'host_to_device' }, h2d);
    if (d2h !== null) this.decoderTransfer.inc({ device, direction: 'device_to_host' }, d2h);
  }

  /** Counts a worker of `device` that died and was replaced. */
  workerRestarted(device: string): void {
    this.workerRestarts.inc({ device });
  }

  /** Sets `florence2_model_info{model,dtype,server_version} 1` (replacing any earlier value). */
  setModelInfo(info: ModelInfoLabels): void {
    this.modelInfo.reset();
    this.modelInfo.set({ model: info.model, dtype: info.dtype, server_version: info.serverVersion }, 1);
  }

  /** Sets where the per-device gauges come from; called at every scrape. */
  setDeviceGaugesSource(fn: () => ReadonlyArray<DeviceGauges>): void {
    this.deviceSource = fn;
  }

  /** The registry in Prometheus text format. */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  private readonly refused: Counter<'reason'>;
  private readonly rejectedMessages: Counter<'reason'>;
  private budgetSource: (() => { usedBytes: number; totalBytes: number }) | null = null;

  private readDevices(): readonly DeviceGauges[] {
    try {
      return this.deviceSource();
    } catch {
      // A failing source leaves the device gauges empty for this scrape rather than failing the whole scrape.
      return [];
    }
  }
}
