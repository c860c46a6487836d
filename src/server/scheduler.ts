/**
 * Admission, device choice, batching, deadlines and cancellation over several device pools.
 *
 * - Admission is bounded: per device at most `maxQueuePerDevice` requests wait in our own FIFO, plus
 *   one per free worker slot (so a request that can start at once is never refused). When every
 *   device is full the request is refused at once with RESOURCE_EXHAUSTED; while not started or
 *   draining, with UNAVAILABLE.
 * - Batching: while a device has a free worker slot, the waiting requests that can share a decoder
 *   loop become one worker batch (`batcher.ts`), when their rows fill `maxBatchRows` or the oldest has
 *   waited `maxQueueDelayMs`. Arrival order is kept: the oldest request always goes first.
 * - The queue is ours, not piscina's, so an expired or cancelled queued request is removed and never
 *   runs.
 * - Each request of a running batch has its own cancel slot, read by the worker between decoder
 *   steps. A deadline or a client cancel answers the request at once and asks the worker to drop its
 *   rows; its batch-mates go on. The slot is released when the batch ends. Running piscina tasks are
 *   never aborted.
 * - Shutdown: `drain` refuses new work and lets queued and running work finish within the grace
 *   period; what is left then (or at once, with `stopAll`, for a forced stop) is answered
 *   UNAVAILABLE, which clients retry on another instance, never CANCELLED: queued requests leave the
 *   queue, running ones are answered now and their workers drop their rows (CANCEL_BY_SHUTDOWN).
 */
import { performance } from 'node:perf_hooks';
import {
  CancelledError,
  DeadlineExceededError,
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  ServiceError,
  UnavailableError,
  WorkerInputError,
} from '../common/errors';
import type { DeviceGauges } from '../metrics/registry';
import {
  CANCEL_BY_CLIENT,
  CANCEL_BY_DEADLINE,
  CANCEL_BY_SHUTDOWN,
  type BatchShape,
  type CancelReason,
  type BatchStats,
  type WorkerError,
  type WorkerItemOutcome,
  type WorkerRequest,
  type WorkerResult,
  type WorkerTask,
} from '../common/protocol';
import { type LogFields, logContext } from '../common/logger';
import { CancelSlots } from './cancel-slots';
import { type BatchLimits, fairOrder, flushIn, takeBatch } from './batcher';

/** What the scheduler needs of a device pool ({@link DevicePool} implements it; tests fake it). */
export interface PoolLike {
  /** Device name, e.g. "cuda:0". */
  readonly device: string;
  /** The cancel-flag buffer the pool's workers read: the scheduler's {@link CancelSlots} buffer. */
  readonly cancelFlags: SharedArrayBuffer;
  /** Warm worker threads now. */
  readonly workers: number;
  /** Started and able to take work. */
  readonly ready: boolean;
  start(): Promise<void>;
  /**
   * Resolves with the worker's result; rejects (with a ServiceError) only when the worker could not
   * answer. `onOutcome` hears each item's outcome as soon as the worker has it.
   */
  run(task: WorkerTask, onOutcome?: (index: number, outcome: WorkerItemOutcome) => void): Promise<WorkerResult>;
  busyRatio(): number;
  close(): Promise<void>;
}

export interface SchedulerOptions {
  pools: PoolLike[];
  /** The cancel flags every pool was started with, sized with {@link CancelSlots.forDevices}. */
  cancelSlots: CancelSlots;
  /** Worker batches running at once per device (the pool's worker threads). */
  maxInFlightPerDevice: number;
  /** Requests waiting per device beyond those a free worker can take at once. */
  maxQueuePerDevice: number;
  /** Batching limits per device; default: one request per batch. */
  batching?: (device: string) => BatchLimits;
  /** Beams of a request that does not ask (the model's default), to count its rows. */
  defaultNumBeams?: number;
  /** Called once per batch that starts, with its shape and each request's time in the queue. */
  onBatchStart?: (device: string, shape: BatchShape, waitMs: number[]) => void;
  /** Called once per batch that ended with the worker's figures. */
  onBatchEnd?: (device: string, stats: BatchStats) => void;
  /** Called when a request answered early (deadline, cancel, shutdown) is later reported stopped by its worker. */
  onStoppedInBatch?: (requestId: string, device: string, message: string) => void;
}

/** A request for the scheduler: the prompts of one client request and its own limits. */
export interface ScheduledRequest {
  prompts: WorkerRequest[];
  numBeams?: number;
  maxNewTokens?: number;
  /** Test hook: the worker exits while the batch runs. */
  crash?: boolean;
}

export interface SubmitOptions {
  /** Absolute deadline, epoch ms (`Date.now()` clock). */
  deadline?: number;
  /** Aborted when the client cancels. */
  signal?: AbortSignal;
  /** For logs and error messages. */
  requestId: string;
  /** Who sent it (guard.ts): queues and batches are shared fairly between clients. */
  client?: string;
}

export interface SubmitResult {
  result: Extract<WorkerItemOutcome, { ok: true }>;
  device: string;
  /** Time in our queue before its batch started. */
  queueMs: number;
  /** The part of `queueMs` a worker was free while the batch gathered (`maxQueueDelayMs`). */
  batchWaitMs: number;
  /** The batch the request ran in. */
  batch: BatchShape;
  /** Its id (unique per scheduler), for traces and logs. */
  batchId: number;
  /** When the batch was handed to its worker (performance.now()): the end of `queueMs`. */
  dispatchedAt: number;
}

/** setTimeout caps delays at 2^31-1 ms (longer ones fire at once), so long deadlines re-arm. */
function timerAt(epochMs: number, fn: () => void): { clear(): void } {
  let handle: NodeJS.Timeout;
  const arm = () => {
    const left = epochMs - Date.now();
    handle = left > 2 ** 31 - 1 ? setTimeout(arm, 2 ** 31 - 1) : setTimeout(fn, Math.max(0, left));
    handle.unref?.();
  };
  arm();
  return { clear: () => clearTimeout(handle) };
}

interface Entry {
  request: ScheduledRequest;
  opts: SubmitOptions;
  lane: Lane;
  rows: number;
  key: string;
  enqueued: number;
  client: string | undefined;
  resolve(r: SubmitResult): void;
  reject(e: Error): void;
  settled: boolean;
  timer: { clear(): void } | null;
  onAbort: (() => void) | null;
  /** Set while its batch runs. */
  slot: number;
  /** The log fields of the request (requestId, traceId) when it was submitted, for its worker's lines. */
  log: LogFields;
}

interface Lane {
  pool: PoolLike;
  limits: BatchLimits;
  /** Worker batches running. */
  batches: number;
  /** Requests of running batches not answered yet. */
  running: number;
  queue: Entry[];
  /** When a worker slot last became free (performance.now()): the start of a batch's gathering wait. */
  freeSince: number;
  /** Armed while the head of the queue waits for its batch to fill. */
  flushTimer: NodeJS.Timeout | null;
}

type State = 'new' | 'starting' | 'running' | 'draining' | 'closed';

const ONE_BY_ONE: BatchLimits = { maxBatchRows: 1, maxQueueDelayMs: 0 };

/** What a request cut by a shutdown is answered (UNAVAILABLE: clients retry it elsewhere). */
export const SHUTTING_DOWN = 'the server is shutting down; retry on another instance';

/** What {@link Scheduler.drain} and {@link Scheduler.stopAll} answered UNAVAILABLE. */
export interface ShutdownCut {
  /** Requests that were running; their workers were asked to drop their rows. */
  running: number;
  /** Requests that were waiting in a queue and never ran. */
  queued: number;
}

/** Admission and dispatch over device pools. */
export class Scheduler {
  private readonly lanes: Lane[];
  private readonly slots: CancelSlots;
  private readonly maxInFlight: number;
  private readonly maxQueue: number;
  private readonly defaultNumBeams: number;
  private readonly options: SchedulerOptions;
  private state: State = 'new';
  private rr = 0;
  private nextBatchId = 1;
  private idleWaiters: Array<() => void> = [];
  /** Requests of running batches not answered yet, every device. */
  private readonly active = new Set<Entry>();

  constructor(options: SchedulerOptions) {
    const { pools, maxInFlightPerDevice, maxQueuePerDevice, cancelSlots } = options;
    if (pools.length === 0) throw new RangeError('the scheduler needs at least one device pool');
    if (!Number.isInteger(maxInFlightPerDevice) || maxInFlightPerDevice < 1)
      throw new RangeError(`maxInFlightPerDevice must be an integer ≥ 1, got ${maxInFlightPerDevice}`);
    if (!Number.isInteger(maxQueuePerDevice) || maxQueuePerDevice < 0)
      throw new RangeError(`maxQueuePerDevice must be an integer ≥ 0, got ${maxQueuePerDevice}`);
    const other = pools.find((p) => p.cancelFlags !== cancelSlots.buffer);
    if (other)
      throw new RangeError(`pool ${other.device} has its own cancel-flag buffer; every pool must share the scheduler's (CancelSlots)`);
    const names = new Set(pools.map((p) => p.device));
    if (names.size !== pools.length) throw new RangeError('two pools have the same device name');
    const limits = pools.map((p) => options.batching?.(p.device) ?? ONE_BY_ONE);
    for (const [i, l] of limits.entries()) {
      if (!Number.isInteger(l.maxBatchRows) || l.maxBatchRows < 1)
        throw new RangeError(`${pools[i].device}: maxBatchRows must be an integer ≥ 1, got ${l.maxBatchRows}`);
      if (!Number.isFinite(l.maxQueueDelayMs) || l.maxQueueDelayMs < 0)
        throw new RangeError(`${pools[i].device}: maxQueueDelayMs must be ≥ 0, got ${l.maxQueueDelayMs}`);
    }
    const needed = CancelSlots.forDevices(pools.length, maxInFlightPerDevice, Math.max(...limits.map((l) => l.maxBatchRows))).size;
    if (cancelSlots.size < needed) {
      throw new RangeError(
        `the cancel-flag buffer has ${cancelSlots.size} slots; ${pools.length} devices × ${maxInFlightPerDevice} batches in flight × their requests need ${needed}`,
      );
    }
    this.slots = cancelSlots;
    const now = performance.now();
    this.lanes = pools.map((pool, i) => ({ pool, limits: limits[i], batches: 0, running: 0, queue: [], freeSince: now, flushTimer: null }));
    this.maxInFlight = maxInFlightPerDevice;
    this.maxQueue = maxQueuePerDevice;
    this.defaultNumBeams = options.defaultNumBeams ?? 1;
    this.options = options;
  }

  /** The device names, in pool order. */
  devices(): string[] {
    return this.lanes.map((l) => l.pool.device);
  }

  /**
   * Starts every pool (workers load and warm up) and then accepts work. If a pool fails, rejects with
   * its error once all have settled; call close() to release the pools that did start.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`the scheduler cannot start: it is ${this.state}`);
    this.state = 'starting';
    const results = await Promise.allSettled(this.lanes.map((l) => l.pool.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.state = 'new';
      throw failed.reason;
    }
    if (this.state === 'starting') this.state = 'running';
  }

  /** Per-device gauges: running and queued requests, busy ratio, warm workers. */
  stats(): DeviceGauges[] {
    return this.lanes.map((l) => ({
      device: l.pool.device,
      inFlight: l.running,
      queued: l.queue.length,
      busyRatio: l.pool.busyRatio(),
      workers: l.pool.workers,
    }));
  }

  /**
   * Runs a request on the least-loaded device, in a batch with others that can share its decoder
   * loop. Rejects with a ServiceError: UNAVAILABLE (not started, draining, device down, worker died),
   * RESOURCE_EXHAUSTED (all full), DEADLINE_EXCEEDED / CANCELLED (queued or running),
   * INVALID_ARGUMENT or INTERNAL from the worker.
   */
  submit(request: ScheduledRequest, opts: SubmitOptions): Promise<SubmitResult> {
    return new Promise<SubmitResult>((resolve, reject) => {
      // 1) admission
      if (this.state === 'new' || this.state === 'starting') return reject(new UnavailableError('the scheduler is not started yet; retry'));
      if (this.state !== 'running') return reject(new UnavailableError(SHUTTING_DOWN));
      if (opts.deadline !== undefined && opts.deadline <= Date.now())
        return reject(new DeadlineExceededError('the deadline had already passed when the request arrived'));
      if (opts.signal?.aborted) return reject(new CancelledError('the request was cancelled before it was scheduled'));
      let lane = this.pick();
      if (lane === null) return reject(new UnavailableError('no device is available; retry'));
      if (lane === 'full') lane = this.displaceForFairness(opts.client);
      if (lane === 'full') {
        return reject(
          new ResourceExhaustedError(
            `all ${this.lanes.length} device(s) are full (each runs ${this.maxInFlight} batch(es) and queues at most ${this.maxQueue} requests); retry later`,
          ),
        );
      }

      // 2) bookkeeping shared by the queued and running phases
      const numBeams = request.numBeams ?? this.defaultNumBeams;
      const entry: Entry = {
        request,
        opts,
        lane,
        rows: request.prompts.length * numBeams,
        key: `beams=${numBeams}`,
        enqueued: performance.now(),
        client: opts.client,
        resolve,
        reject,
        settled: false,
        timer: null,
        onAbort: null,
        slot: -1,
        log: logContext(),
      };
      if (opts.deadline !== undefined && Number.isFinite(opts.deadline)) entry.timer = timerAt(opts.deadline, () => this.onDeadline(entry));
      if (opts.signal) {
        entry.onAbort = () => this.onClientCancel(entry);
        opts.signal.addEventListener('abort', entry.onAbort, { once: true });
      }

      // 3) wait in the device's FIFO for a batch
      lane.queue.push(entry);
      this.pump(lane);
    });
  }

  /**
   * Stops accepting work (UNAVAILABLE) and waits up to `graceMs` for queued and running requests.
   * What is still there then is answered UNAVAILABLE at once (see {@link stopAll}): queued requests
   * never run, running ones have their workers drop their rows between decoder steps. Resolves with
   * what was cut once every request is answered (early if `stopAll` is called meanwhile). The pools'
   * threads go on until their batches end; close() waits for them.
   */
  async drain(graceMs: number): Promise<ShutdownCut> {
    if (this.state === 'closed') return { running: 0, queued: 0 };
    this.stopAccepting();
    // What waits for a batch to fill goes now.
    for (const lane of this.lanes) this.pump(lane);
    if (this.total() > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, graceMs))))]);
      clearTimeout(timer);
    }
    return this.stopAll();
  }

  /**
   * Answers every queued and running request UNAVAILABLE now and refuses new work: the end of the
   * grace period, or a forced stop. Running requests are stopped through their cancel slots
   * (CANCEL_BY_SHUTDOWN); their threads are never terminated, they end their batch at the next
   * decoder step. A pending {@link drain} then resolves.
   */
  stopAll(): ShutdownCut {
    this.stopAccepting();
    const running = [...this.active];
    for (const entry of running) this.stopRunning(entry, CANCEL_BY_SHUTDOWN, new UnavailableError(SHUTTING_DOWN));
    const queued = this.rejectQueued(() => new UnavailableError(SHUTTING_DOWN));
    return { running: running.length, queued };
  }

  /** Answers what is left UNAVAILABLE, then closes every pool (each waits for its running tasks). */
  async close(): Promise<void> {
    if (this.state !== 'closed') this.stopAll();
    this.state = 'closed';
    await Promise.all(this.lanes.map((l) => l.pool.close()));
  }

  private stopAccepting(): void {
    if (this.state !== 'closed') this.state = 'draining';
  }

  /**
   * When every queue is full, a client holding fewer queued requests than the heaviest client (by
   * more than one) takes the place of that client's newest queued request, which is answered
   * RESOURCE_EXHAUSTED. So one client keeping many requests outstanding cannot lock the others out;
   * the bounds stay exact. Returns the lane with the freed place, or 'full'.
   */
  private displaceForFairness(client: string | undefined): Lane | 'full' {
    const queued = new Map<string | undefined, Entry[]>();
    for (const lane of this.lanes) {
      for (const e of lane.queue) {
        const list = queued.get(e.client);
        if (list) list.push(e);
        else queued.set(e.client, [e]);
      }
    }
    const mine = queued.get(client)?.length ?? 0;
    let heaviest: Entry[] | null = null;
    for (const [c, list] of queued) {
      if (c !== client && list.length > (heaviest?.length ?? 0)) heaviest = list;
    }
    if (!heaviest || heaviest.length <= mine + 1) return 'full';
    const victim = heaviest.reduce((a, b) => (b.enqueued > a.enqueued ? b : a));
    if (!victim.lane.pool.ready) return 'full';
    this.removeQueued(victim);
    this.settle(
      victim,
      new ResourceExhaustedError(
        `the queue is full and client ${victim.client ?? 'unknown'} holds ${heaviest.length} of its places; this request gave its place to another client's (fair share); retry later`,
        { retryAfterMs: 100 },
      ),
    );
    return victim.lane;
  }

  /** Waiting requests a lane admits: its queue bound plus one per free worker slot. */
  private capacity(lane: Lane): number {
    return this.maxQueue + Math.max(0, this.maxInFlight - lane.batches);
  }

  /** The least-loaded device with room (queued + running batches, relative to its bound); ties round-robin. */
  private pick(): Lane | 'full' | null {
    let best: Lane | null = null;
    let bestLoad = Infinity;
    let bestIndex = -1;
    let anyReady = false;
    for (let k = 0; k < this.lanes.length; k++) {
      const i = (this.rr + k) % this.lanes.length;
      const lane = this.lanes[i];
      if (!lane.pool.ready) continue;
      anyReady = true;
      if (lane.queue.length >= this.capacity(lane)) continue;
      const load = (lane.queue.length + lane.batches) / (this.maxQueue + this.maxInFlight);
      if (load < bestLoad) {
        best = lane;
        bestLoad = load;
        bestIndex = i;
      }
    }
    if (best === null) return anyReady ? 'full' : null;
    this.rr = (bestIndex + 1) % this.lanes.length;
    return best;
  }

  /** Starts batches while the device has a free worker slot and a batch is ready to go. */
  private pump(lane: Lane): void {
    if (lane.flushTimer) {
      clearTimeout(lane.flushTimer);
      lane.flushTimer = null;
    }
    while (lane.batches < this.maxInFlight) {
      this.dropExpired(lane);
      if (lane.queue.length === 0) return;
      const now = performance.now();
      const ordered = fairOrder(lane.queue);
      const wait = this.state === 'running' ? flushIn(ordered, lane.limits, now) : 0;
      if (wait > 0) {
        lane.flushTimer = setTimeout(() => this.pump(lane), Math.ceil(wait));
        return;
      }
      const batch = takeBatch(ordered, lane.limits);
      const taken = new Set(batch);
      lane.queue = lane.queue.filter((e) => !taken.has(e));
      this.dispatch(lane, batch);
    }
  }

  /** Settles queued requests whose deadline passed (timers can fire late; such a request must not start). */
  private dropExpired(lane: Lane): void {
    const now = Date.now();
    for (const e of [...lane.queue]) {
      if (e.opts.deadline !== undefined && e.opts.deadline <= now) this.onDeadline(e);
    }
  }

  private dispatch(lane: Lane, batch: Entry[]): void {
    const device = lane.pool.device;
    const started = performance.now();
    const items: Array<{ entry: Entry; slot: number }> = [];
    for (const entry of batch) {
      const slot = this.slots.claim();
      if (slot === undefined) {
        // Cannot happen with the constructor's slot check; fail the request rather than share a slot.
        this.settle(entry, new InternalError(`request ${entry.opts.requestId}: no free cancel slot`));
        continue;
      }
      entry.slot = slot;
      this.active.add(entry);
      items.push({ entry, slot });
    }
    if (items.length === 0) return;
    lane.batches += 1;
    lane.running += items.length;
    const shape: BatchShape = { requests: items.length, rows: items.reduce((s, i) => s + i.entry.rows, 0) };
    const gatherStart = lane.freeSince;
    const waits = items.map((i) => started - i.entry.enqueued);
    this.options.onBatchStart?.(device, shape, waits);
    const timing = items.map((i) => ({
      queueMs: started - i.entry.enqueued,
      batchWaitMs: Math.max(0, started - Math.max(i.entry.enqueued, gatherStart)),
    }));
    const numBeams = batch[0].request.numBeams;
    const batchId = this.nextBatchId++;
    const task: WorkerTask = {
      kind: 'run',
      batchId,
      items: items.map((i) => ({
        prompts: i.entry.request.prompts,
        maxNewTokens: i.entry.request.maxNewTokens,
        cancelSlot: i.slot,
        log: i.entry.log,
      })),
      ...(numBeams !== undefined ? { numBeams } : {}),
      ...(items.some((i) => i.entry.request.crash) ? { crash: true } : {}),
    };
    const answered = new Set<number>();
    const answer = (k: number, outcome: WorkerItemOutcome) => {
      if (answered.has(k)) return;
      answered.add(k);
      const { entry } = items[k];
      if (entry.settled) {
        // Answered already (deadline or cancel): the worker confirms it dropped the request's rows.
        if (!outcome.ok) this.options.onStoppedInBatch?.(entry.opts.requestId, device, outcome.error.message);
        return;
      }
      lane.running -= 1;
      if (outcome.ok) this.settle(entry, { result: outcome, device, ...timing[k], batch: shape, batchId, dispatchedAt: started });
      else this.settle(entry, this.toError(outcome.error, entry, device));
      this.checkIdle();
    };
    // Slots and the lane are released before the callers hear the batch's end, so a client that sends
    // its next request on receipt never finds its own finished batch still counted.
    const release = () => {
      lane.batches -= 1;
      lane.freeSince = performance.now();
      for (const i of items) this.slots.release(i.slot);
    };
    const failAll = (error: ServiceError) => {
      items.forEach((i, k) => {
        if (answered.has(k)) return;
        answered.add(k);
        if (!i.entry.settled) lane.running -= 1;
        this.settle(i.entry, error);
      });
    };
    Promise.resolve()
      .then(() => lane.pool.run(task, answer))
      .then(
        (result) => {
          release();
          if (result.ok) {
            result.outcomes.forEach((o, k) => answer(k, o));
            this.options.onBatchEnd?.(device, result.batch);
          } else {
            const ids = items.map((i) => i.entry.opts.requestId).join(', ');
            failAll(
              result.error.kind === 'internal'
                ? new InternalError(`batch of ${ids} failed on ${device}: internal error`, { cause: new Error(result.error.message) })
                : this.toError(result.error, items[0].entry, device),
            );
          }
        },
        (err: unknown) => {
          release();
          // A worker that died fails every request of its batch (UNAVAILABLE: retryable).
          failAll(err instanceof ServiceError ? err : new InternalError(`a batch failed on ${device}: internal error`, { cause: err }));
        },
      )
      .finally(() => {
        this.pump(lane);
        this.checkIdle();
      });
  }

  private toError(error: WorkerError, entry: Entry, device: string): ServiceError {
    switch (error.kind) {
      case 'invalid_argument':
        return error.field ? new WorkerInputError(error.field, error.message) : new InvalidArgumentError('request', error.message);
      case 'cancelled':
        return new CancelledError(error.message);
      case 'deadline_exceeded':
        return new DeadlineExceededError(error.message);
      case 'unavailable':
        return new UnavailableError(error.message);
      case 'internal':
        // Clients get the request id; the worker's message travels as the cause, for the log.
        return new InternalError(`request ${entry.opts.requestId} failed on ${device}: internal error`, {
          cause: new Error(error.message),
        });
    }
  }

  /** A running request answered now; its worker drops the request's rows before its next decoder step. */
  private stopRunning(entry: Entry, reason: CancelReason, error: ServiceError): void {
    if (entry.settled) return;
    this.slots.stop(entry.slot, reason);
    entry.lane.running -= 1;
    this.settle(entry, error);
    this.checkIdle();
  }

  private onDeadline(entry: Entry): void {
    if (entry.settled) return;
    if (entry.slot >= 0) {
      this.stopRunning(
        entry,
        CANCEL_BY_DEADLINE,
        new DeadlineExceededError(`the deadline passed while the request ran on ${entry.lane.pool.device}`),
      );
      return;
    }
    this.removeQueued(entry);
    this.settle(
      entry,
      new DeadlineExceededError(
        `the deadline passed after ${Math.round(performance.now() - entry.enqueued)} ms in the queue for ${entry.lane.pool.device}`,
      ),
    );
  }

  private onClientCancel(entry: Entry): void {
    if (entry.settled) return;
    if (entry.slot >= 0) {
      this.stopRunning(entry, CANCEL_BY_CLIENT, new CancelledError('the request was cancelled by the client while it ran'));
      return;
    }
    this.removeQueued(entry);
    this.settle(entry, new CancelledError('the request was cancelled by the client while queued'));
  }

  private removeQueued(entry: Entry): void {
    const i = entry.lane.queue.indexOf(entry);
    if (i >= 0) entry.lane.queue.splice(i, 1);
    this.checkIdle();
  }

  /** Rejects every queued request; returns how many there were. */
  private rejectQueued(error: () => ServiceError): number {
    let n = 0;
    for (const lane of this.lanes) {
      if (lane.flushTimer) clearTimeout(lane.flushTimer);
      lane.flushTimer = null;
      const queued = lane.queue.splice(0);
      for (const e of queued) this.settle(e, error());
      n += queued.length;
    }
    this.checkIdle();
    return n;
  }

  private settle(entry: Entry, outcome: SubmitResult | Error): void {
    if (entry.settled) return;
    entry.settled = true;
    this.active.delete(entry);
    entry.timer?.clear();
    if (entry.onAbort) entry.opts.signal?.removeEventListener('abort', entry.onAbort);
    if (outcome instanceof Error) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  private total(): number {
    return this.lanes.reduce((s, l) => s + l.running + l.queue.length, 0);
  }

  private whenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  private checkIdle(): void {
    if (this.total() > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
