/**
 * One Piscina pool per device. Each worker thread loads its own copy of the model for the pool's
 * device (workerData = WorkerInit) and warms up before it counts as ready.
 *
 * Readiness: a worker posts a {@link WorkerLifecycleMessage} on its parentPort when its init ends
 * ('ready' after load + warm-up, or 'init-failed'); piscina re-emits it as the pool's 'message'
 * event. `start()` resolves once every worker has said 'ready', and rejects with the worker's own
 * message as soon as all have reported and one failed (so no thread is torn down mid-load).
 * Replacement workers (piscina spawns one when a thread dies) take tasks only after their init
 * promise resolved, i.e. after warm-up: piscina dispatches to a worker it spawned after startup only
 * once that worker's handler export has resolved.
 *
 * Busy ratio: the pool integrates min(inFlight, workers) over time (busy worker-seconds) and reports
 * busy worker-seconds / (workers × wall seconds) over a sliding window of at least `busyWindowMs`
 * (or since start, if younger), from samples taken on each read. Any number of readers get the same
 * answer, unlike a reset-on-scrape counter.
 *
 * Never aborts a running task (terminating a thread inside session.run aborts the process): `run`
 * passes no AbortSignal to piscina, and `close()` waits for running tasks and initialising workers
 * before piscina's (non-forced) close.
 */
import { extname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { InternalError, UnavailableError } from '../common/errors';
import { createLogger, type Logger } from '../common/logger';
import type {
  WorkerInfoTask,
  WorkerInit,
  WorkerItemOutcome,
  WorkerLifecycleMessage,
  WorkerModelInfo,
  WorkerOutcomeMessage,
  WorkerResult,
  WorkerTask,
} from '../common/protocol';

/** The worker entry next to this file's build: `.ts` under tsx, `.js` when compiled. */
export const DEFAULT_WORKER_FILENAME = resolve(__dirname, '..', 'worker', `florence.worker${extname(__filename) || '.js'}`);

/** Piscina's close timeout, after which it would destroy busy workers: effectively never (max timer delay). */
const NEVER_MS = 2 ** 31 - 1;

export interface DevicePoolOptions {
  /** What every worker of this pool starts with (device, provider, model, cancel flags). */
  init: WorkerInit;
  /** Worker threads for this device, each with its own model copy. */
  workers: number;
  /** The worker entry; defaults to {@link DEFAULT_WORKER_FILENAME}. Tests may point at fixtures. */
  filename?: string;
  /** Called when a worker thread died (mid-task or idle) and piscina replaces it. */
  onWorkerRestart?: (device: string) => void;
  /** Called when a worker (a startup one or a replacement) finished load and warm-up. */
  onWorkerReady?: (device: string, threadId: number, warmupMs: number) => void;
  /** Where the pool logs; default: info level on stderr. */
  logger?: Logger;
  /** Busy-ratio window; default 60 s. */
  busyWindowMs?: number;
}

/** A worker of the pool could not start (its model failed to load, or the thread exited during init). */
export class WorkerStartError extends Error {
  constructor(
    readonly device: string,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerStartError';
  }
}

function isWorkerMessage(m: unknown): m is WorkerLifecycleMessage | WorkerOutcomeMessage {
  return typeof m === 'object' && m !== null && 'florence2' in m;
}

/** Called with each item's outcome as soon as the worker has it (before the batch ends). */
export type OutcomeListener = (index: number, outcome: WorkerItemOutcome) => void;

/** Integrates busy worker-seconds and answers the busy ratio over a sliding window. */
class BusyMeter {
  private busyMs = 0;
  private level = 0;
  private since = performance.now();
  private samples: Array<{ t: number; busyMs: number }> = [];

  constructor(
    private readonly capacity: number,
    private readonly windowMs: number,
  ) {
    this.samples.push({ t: this.since, busyMs: 0 });
  }

  /** The number of busy workers changes to `level` now. */
  set(level: number): void {
    this.advance();
    this.level = Math.min(level, this.capacity);
  }

  /** Busy worker-seconds since the pool started. */
  get busySeconds(): number {
    this.advance();
    return this.busyMs / 1000;
  }

  ratio(): number {
    this.advance();
    const now = this.since;
    // Samples at most ~64 per window, so frequent readers cannot grow the list.
    if (now - this.samples[this.samples.length - 1].t >= this.windowMs / 64) this.samples.push({ t: now, busyMs: this.busyMs });
    // Keep the newest sample at least a window old as the baseline; drop the older ones.
    let base = 0;
    for (let i = 0; i < this.samples.length; i++) if (this.samples[i].t <= now - this.windowMs) base = i;
    this.samples = this.samples.slice(base);
    const first = this.samples[0];
    const wallMs = now - first.t;
    if (wallMs <= 0) return this.level / this.capacity;
    return Math.min(1, (this.busyMs - first.busyMs) / (wallMs * this.capacity));
  }

  private advance(): void {
    const now = performance.now();
    this.busyMs += this.level * (now - this.since);
    this.since = now;
  }
}

/** The pool of worker threads of one device. */
export class DevicePool {
  /** The device name, e.g. "cpu:0" or "cuda:1". */
  readonly device: string;
  /** The cancel-flag buffer the workers read (shared by all pools of a scheduler). */
  readonly cancelFlags: SharedArrayBuffer;
  /** Configured worker threads. */
  readonly size: number;
  /** Worker threads that died and were replaced since start. */
  restarts = 0;
  /** Tasks handed to piscina and not settled yet. */
  inFlight = 0;

  private piscina: Piscina | null = null;
  private readonly logger: Logger;
  private readonly filename: string;
  private readonly readyThreads = new Set<number>();
  private readonly reportedThreads = new Set<number>();
  private meter: BusyMeter;
  private info: WorkerModelInfo | null = null;
  private fallback = false;
  private failure: string | null = null;
  private started = false;
  private diedDuringStart = false;
  private lastError: string | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  /** Early outcome listeners of the batches in flight, by batch id. */
  private readonly listeners = new Map<number, OutcomeListener>();
  /** Re-evaluated whenever a worker reports, dies or a task settles. */
  private waiters: Array<() => void> = [];

  constructor(private readonly options: DevicePoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1)
      throw new RangeError(`workers must be an integer ≥ 1, got ${options.workers}`);
    this.device = options.init.device;
    this.cancelFlags = options.init.cancelFlags;
    this.size = options.workers;
    this.filename = options.filename ?? DEFAULT_WORKER_FILENAME;
    this.logger = options.logger ?? createLogger({ level: 'info' });
    this.meter = new BusyMeter(options.workers, options.busyWindowMs ?? 60_000);
  }

  /** Warm worker threads now (alive and past warm-up). */
  get workers(): number {
    if (!this.piscina) return 0;
    let n = 0;
    for (const t of this.piscina.threads) if (this.readyThreads.has(t.threadId)) n++;
    return n;
  }

  /** Thread ids of the live worker threads (a replacement gets a new id). */
  get threadIds(): number[] {
    return this.piscina ? this.piscina.threads.map((t) => t.threadId) : [];
  }

  /** Started, not closing, and no worker failed to load: the scheduler may send work here. */
  get ready(): boolean {
    return this.started && !this.closing && this.failure === null;
  }

  /** The execution provider actually in use ('cpu' after a fallback); null before start. */
  get provider(): string | null {
    return this.info?.provider ?? null;
  }

  /** Whether the workers fell back to CPU because the device's provider could not load. */
  get cpuFallback(): boolean {
    return this.fallback;
  }

  /** The model facts reported by the first ready worker; null before start. */
  get modelInfo(): WorkerModelInfo | null {
    return this.info;
  }

  /** Busy worker-seconds since start (for a counter metric). */
  get busySeconds(): number {
    return this.meter.busySeconds;
  }

  /** Busy worker-seconds / (workers × wall seconds) over the last `busyWindowMs` (see the file comment). */
  busyRatio(): number {
    return this.meter.ratio();
  }

  /**
   * Spawns the workers and resolves when every one has loaded the model and warmed up. Rejects with
   * a {@link WorkerStartError} carrying the worker's message (e.g. the execution provider's error)
   * if any worker fails; the pool's threads are then closed.
   */
  async start(): Promise<void> {
    if (this.piscina) throw new Error(`pool for ${this.device} was already started`);
    const piscina = new Piscina({
      filename: this.filename,
      minThreads: this.size,
      maxThreads: this.size,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      workerData: this.options.init,
      closeTimeout: NEVER_MS,
    });
    this.piscina = piscina;
    this.meter = new BusyMeter(this.size, this.options.busyWindowMs ?? 60_000);
    piscina.on('message', (m: unknown) => this.onMessage(m));
    piscina.on('workerDestroy', () => {
      // Piscina emits this before it drops the thread from `threads`: re-check once it has.
      setImmediate(() => this.notify());
      // After close() starts, destroys are ours; otherwise a thread died and piscina replaces it.
      if (this.closing) return;
      if (this.started) {
        this.restarts += 1;
        this.options.onWorkerRestart?.(this.device);
      } else {
        this.diedDuringStart = true;
      }
    });
    // Without a listener an 'error' event (a worker error with no task to blame) would crash the process.
    piscina.on('error', (err: unknown) => {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.logger.error('worker pool error', { device: this.device, err });
    });

    await this.until(() => this.diedDuringStart || piscina.threads.filter((t) => this.reportedThreads.has(t.threadId)).length >= this.size);
    if (this.failure !== null || this.diedDuringStart) {
      const message =
        this.failure ?? `a worker thread on ${this.device} exited while loading the model${this.lastError ? `: ${this.lastError}` : ''}`;
      this.failure = message;
      await this.close();
      throw new WorkerStartError(this.device, message);
    }
    this.started = true;
  }

  /**
   * Runs one task on a worker. Resolves with the worker's result (request failures are `ok: false`
   * data). Rejects with UnavailableError when the pool is not serving or the worker died during the
   * task (the thread is replaced and counted in `restarts`).
   */
  async run(task: WorkerTask, onOutcome?: OutcomeListener): Promise<WorkerResult> {
    if (onOutcome) this.listeners.set(task.batchId, onOutcome);
    let result: WorkerResult;
    try {
      result = (await this.submit(task)) as WorkerResult;
    } finally {
      this.listeners.delete(task.batchId);
    }
    if (!result.ok && result.error.workerFailed) {
      this.failure ??= result.error.message;
      throw new UnavailableError(`${this.device} is unavailable: ${result.error.message}`);
    }
    return result;
  }

  /** Asks a worker for the model facts (provider in use, files, generation defaults). */
  async describe(): Promise<WorkerModelInfo> {
    const reply = await this.submit({ kind: 'info' });
    if ('ok' in reply) throw new UnavailableError(`${this.device} is unavailable: ${reply.ok ? 'unexpected reply' : reply.error.message}`);
    return reply;
  }

  /** Waits for running tasks and initialising workers, then closes the threads (never forced). */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      const piscina = this.piscina;
      if (!piscina) return;
      // A thread terminated inside native code (session.run, or session creation) can abort the process.
      await this.until(() => this.inFlight === 0 && piscina.threads.every((t) => this.reportedThreads.has(t.threadId)));
      await piscina.close();
    })();
    return this.closed;
  }

  private async submit(task: WorkerTask | WorkerInfoTask): Promise<WorkerResult | WorkerModelInfo> {
    const piscina = this.piscina;
    if (!piscina || !this.started) throw new UnavailableError(`${this.device} is not started`);
    if (this.closing) throw new UnavailableError(`${this.device} is shutting down`);
    if (this.failure !== null) throw new UnavailableError(`${this.device} is unavailable: ${this.failure}`);
    this.inFlight += 1;
    this.meter.set(this.inFlight);
    try {
      // No AbortSignal: aborting a running piscina task terminates its thread (see the file comment).
      return (await piscina.run(task)) as WorkerResult | WorkerModelInfo;
    } catch (err) {
      // The handler never throws, so a rejection is piscina's: the task could not be posted to the
      // thread (a structured-clone failure: our bug), or the thread exited before it answered.
      if (err instanceof Error && err.name === 'DataCloneError') throw new InternalError(`worker pool on ${this.device}: ${err.message}`);
      throw new UnavailableError(`worker on ${this.device} died during the request; retry`);
    } finally {
      this.inFlight -= 1;
      this.meter.set(this.inFlight);
      this.notify();
    }
  }

  private onMessage(m: unknown): void {
    if (!isWorkerMessage(m)) return;
    if (m.florence2 === 'outcome') {
      this.listeners.get(m.batchId)?.(m.index, m.outcome);
      return;
    }
    this.reportedThreads.add(m.threadId);
    if (m.florence2 === 'ready') {
      this.readyThreads.add(m.threadId);
      this.info ??= m.info;
      this.fallback ||= m.fallback;
      this.options.onWorkerReady?.(this.device, m.threadId, m.warmupMs);
    } else {
      this.failure ??= m.message;
    }
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once `done()` holds, re-checking after every report, death and settled task. Piscina
   * unrefs its threads, so a ref'd timer keeps the process alive while we wait on them.
   */
  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      let keepAlive: NodeJS.Timeout | undefined;
      const check = () => {
        if (!done()) {
          keepAlive ??= setInterval(() => {}, 60_000);
          this.waiters.push(check);
          return;
        }
        clearInterval(keepAlive);
        resolve();
      };
      check();
    });
  }
}
