/**
 * Admission, device choice, queueing, deadlines and cancellation over several device pools.
 *
 * - Admission is bounded: per device at most `maxInFlightPerDevice` tasks run and at most
 *   `maxQueuePerDevice` wait in our own FIFO. When every device is full the request is refused at
 *   once with RESOURCE_EXHAUSTED; while not started or draining, with UNAVAILABLE.
 * - The queue is ours, not piscina's, so an expired or cancelled queued request is removed and never
 *   runs.
 * - Running requests are stopped cooperatively: each gets a slot in a shared Int32Array that its
 *   worker reads between decoder steps; the deadline timer writes CANCEL_BY_DEADLINE and a client
 *   abort CANCEL_BY_CLIENT (first writer wins). Running piscina tasks are never aborted.
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
import { CANCEL_BY_CLIENT, CANCEL_BY_DEADLINE, type WorkerResult, type WorkerTask } from '../common/protocol';
import { CancelSlots } from './cancel-slots';

/** A successful worker result. */
export type WorkerSuccess = Extract<WorkerResult, { ok: true }>;

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
  /** Resolves with the worker's result; rejects (with a ServiceError) only when the worker could not answer. */
  run(task: WorkerTask): Promise<WorkerResult>;
  busyRatio(): number;
  close(): Promise<void>;
}

export interface SchedulerOptions {
  pools: PoolLike[];
  /** The cancel flags every pool was started with, sized with {@link CancelSlots.forDevices}. */
  cancelSlots: CancelSlots;
  /** Tasks running at once per device (more wait in the queue). */
  maxInFlightPerDevice: number;
  /** Tasks waiting per device beyond the in-flight ones. */
  maxQueuePerDevice: number;
  /** Called for every request that starts running, with its time in our queue. */
  onQueueWait?: (device: string, ms: number) => void;
}

export interface SubmitOptions {
  /** Absolute deadline, epoch ms (`Date.now()` clock). */
  deadline?: number;
  /** Aborted when the client cancels. */
  signal?: AbortSignal;
  /** For error messages of unexpected failures. */
  requestId: string;
}

export interface SubmitResult {
  result: WorkerSuccess;
  device: string;
  /** Time in our queue before a worker got it. */
  queueMs: number;
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

type Task = Omit<WorkerTask, 'cancelSlot' | 'kind'>;

interface Entry {
  task: Task;
  opts: SubmitOptions;
  lane: Lane;
  enqueued: number;
  resolve(r: SubmitResult): void;
  reject(e: Error): void;
  settled: boolean;
  timer: { clear(): void } | null;
  onAbort: (() => void) | null;
  /** Set while running. */
  slot: number;
}

interface Lane {
  pool: PoolLike;
  running: number;
  queue: Entry[];
}

type State = 'new' | 'starting' | 'running' | 'draining' | 'closed';

/** Admission and dispatch over device pools. */
export class Scheduler {
  private readonly lanes: Lane[];
  private readonly slots: CancelSlots;
  private readonly maxInFlight: number;
  private readonly maxQueue: number;
  private readonly onQueueWait?: (device: string, ms: number) => void;
  private state: State = 'new';
  private rr = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(options: SchedulerOptions) {
    const { pools, maxInFlightPerDevice, maxQueuePerDevice } = options;
    if (pools.length === 0) throw new RangeError('the scheduler needs at least one device pool');
    if (!Number.isInteger(maxInFlightPerDevice) || maxInFlightPerDevice < 1) throw new RangeError(`maxInFlightPerDevice must be an integer ≥ 1, got ${maxInFlightPerDevice}`);
    if (!Number.isInteger(maxQueuePerDevice) || maxQueuePerDevice < 0) throw new RangeError(`maxQueuePerDevice must be an integer ≥ 0, got ${maxQueuePerDevice}`);
    const { cancelSlots } = options;
    const other = pools.find((p) => p.cancelFlags !== cancelSlots.buffer);
    if (other) throw new RangeError(`pool ${other.device} has its own cancel-flag buffer; every pool must share the scheduler's (CancelSlots)`);
    const names = new Set(pools.map((p) => p.device));
    if (names.size !== pools.length) throw new RangeError('two pools have the same device name');
    const needed = CancelSlots.forDevices(pools.length, maxInFlightPerDevice).size;
    if (cancelSlots.size < needed) throw new RangeError(`the cancel-flag buffer has ${cancelSlots.size} slots; ${pools.length} devices × ${maxInFlightPerDevice} in flight need ${needed}`);
    this.slots = cancelSlots;
    this.lanes = pools.map((pool) => ({ pool, running: 0, queue: [] }));
    this.maxInFlight = maxInFlightPerDevice;
    this.maxQueue = maxQueuePerDevice;
    this.onQueueWait = options.onQueueWait;
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
    return this.lanes.map((l) => ({ device: l.pool.device, inFlight: l.running, queued: l.queue.length, busyRatio: l.pool.busyRatio(), workers: l.pool.workers }));
  }

  /**
   * Runs a task on the least-loaded device, now or after waiting in that device's queue. Rejects with
   * a ServiceError: UNAVAILABLE (not started, draining, device down), RESOURCE_EXHAUSTED (all full),
   * DEADLINE_EXCEEDED / CANCELLED (queued or running), INVALID_ARGUMENT or INTERNAL from the worker.
   */
  submit(task: Task, opts: SubmitOptions): Promise<SubmitResult> {
    return new Promise<SubmitResult>((resolve, reject) => {
      // 1) admission
      if (this.state === 'new' || this.state === 'starting') return reject(new UnavailableError('the scheduler is not started yet; retry'));
      if (this.state !== 'running') return reject(new UnavailableError('the server is shutting down; retry on another instance'));
      if (opts.deadline !== undefined && opts.deadline <= Date.now()) return reject(new DeadlineExceededError('the deadline had already passed when the request arrived'));
      if (opts.signal?.aborted) return reject(new CancelledError('the request was cancelled before it was scheduled'));
      const lane = this.pick();
      if (lane === null) return reject(new UnavailableError('no device is available; retry'));
      if (lane === 'full') {
        return reject(
          new ResourceExhaustedError(
            `all ${this.lanes.length} device(s) are full (each runs at most ${this.maxInFlight} and queues at most ${this.maxQueue} requests); retry later`,
          ),
        );
      }

      // 2) bookkeeping shared by the queued and running phases
      const entry: Entry = { task, opts, lane, enqueued: performance.now(), resolve, reject, settled: false, timer: null, onAbort: null, slot: -1 };
      if (opts.deadline !== undefined && Number.isFinite(opts.deadline)) entry.timer = timerAt(opts.deadline, () => this.onDeadline(entry));
      if (opts.signal) {
        entry.onAbort = () => this.onClientCancel(entry);
        opts.signal.addEventListener('abort', entry.onAbort, { once: true });
      }

      // 3) run now or wait in the device's FIFO
      if (lane.running < this.maxInFlight && lane.queue.length === 0) this.dispatch(entry);
      else lane.queue.push(entry);
    });
  }

  /**
   * Stops accepting work (UNAVAILABLE), waits up to `graceMs` for queued and running requests, then
   * rejects what is still queued with UNAVAILABLE. Running requests are left to finish (close() waits).
   */
  async drain(graceMs: number): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'draining';
    if (this.total() > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, graceMs))))]);
      clearTimeout(timer);
    }
    this.rejectQueued(() => new UnavailableError('the server is shutting down; retry on another instance'));
  }

  /** Rejects queued requests, then closes every pool (each waits for its running tasks). */
  async close(): Promise<void> {
    this.state = 'closed';
    this.rejectQueued(() => new UnavailableError('the server is shutting down; retry on another instance'));
    await Promise.all(this.lanes.map((l) => l.pool.close()));
  }

  /** Least (running + queued) relative to the device's bound among devices with room; ties round-robin. */
  private pick(): Lane | 'full' | null {
    const bound = this.maxInFlight + this.maxQueue;
    let best: Lane | null = null;
    let bestLoad = Infinity;
    let bestIndex = -1;
    let anyReady = false;
    for (let k = 0; k < this.lanes.length; k++) {
      const i = (this.rr + k) % this.lanes.length;
      const lane = this.lanes[i];
      if (!lane.pool.ready) continue;
      anyReady = true;
      const used = lane.running + lane.queue.length;
      if (used >= bound) continue;
      const load = used / bound;
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

  private dispatch(entry: Entry): void {
    const { lane } = entry;
    const slot = this.slots.claim();
    if (slot === undefined) {
      // Cannot happen with the constructor's slot check; fail the request rather than share a slot.
      return this.settle(entry, new InternalError(`request ${entry.opts.requestId}: no free cancel slot`));
    }
    entry.slot = slot;
    lane.running += 1;
    const queueMs = performance.now() - entry.enqueued;
    this.onQueueWait?.(lane.pool.device, queueMs);
    const device = lane.pool.device;
    // The lane and slot are released before the caller hears back, so a client that sends its next
    // request on receipt never finds its own finished request still counted.
    const release = () => {
      lane.running -= 1;
      // The worker no longer reads the slot once its task settled.
      this.slots.release(slot);
    };
    Promise.resolve()
      .then(() => lane.pool.run({ ...entry.task, kind: 'run', cancelSlot: slot }))
      .then(
        (result) => {
          release();
          this.settle(entry, result.ok ? { result, device, queueMs } : this.toError(result.error, entry, device));
        },
        (err: unknown) => {
          release();
          this.settle(entry, err instanceof ServiceError ? err : new InternalError(`request ${entry.opts.requestId} failed on ${device}: internal error`, { cause: err }));
        },
      )
      .finally(() => {
        this.pump(lane);
        this.checkIdle();
      });
  }

  private toError(error: Extract<WorkerResult, { ok: false }>['error'], entry: Entry, device: string): ServiceError {
    switch (error.kind) {
      case 'invalid_argument':
        return error.field ? new WorkerInputError(error.field, error.message) : new InvalidArgumentError('request', error.message);
      case 'cancelled':
        return new CancelledError(error.message);
      case 'deadline_exceeded':
        return new DeadlineExceededError(error.message);
      case 'internal':
        // Clients get the request id; the worker's message travels as the cause, for the log.
        return new InternalError(`request ${entry.opts.requestId} failed on ${device}: internal error`, { cause: new Error(error.message) });
    }
  }

  /** Starts queued requests while the device has room, skipping ones that settled while waiting. */
  private pump(lane: Lane): void {
    while (lane.running < this.maxInFlight && lane.queue.length > 0) {
      const next = lane.queue.shift()!;
      if (next.settled) continue;
      // Timers can fire late; a request whose deadline passed must not start.
      if (next.opts.deadline !== undefined && next.opts.deadline <= Date.now()) {
        this.settle(next, new DeadlineExceededError(`the deadline passed after ${Math.round(performance.now() - next.enqueued)} ms in the queue for ${lane.pool.device}`));
        continue;
      }
      this.dispatch(next);
    }
  }

  private onDeadline(entry: Entry): void {
    if (entry.settled) return;
    if (entry.slot >= 0) {
      // Running: the worker stops between decoder steps and answers deadline_exceeded.
      this.slots.stop(entry.slot, CANCEL_BY_DEADLINE);
      return;
    }
    this.removeQueued(entry);
    this.settle(entry, new DeadlineExceededError(`the deadline passed after ${Math.round(performance.now() - entry.enqueued)} ms in the queue for ${entry.lane.pool.device}`));
  }

  private onClientCancel(entry: Entry): void {
    if (entry.settled) return;
    if (entry.slot >= 0) {
      this.slots.stop(entry.slot, CANCEL_BY_CLIENT);
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

  private rejectQueued(error: () => ServiceError): void {
    for (const lane of this.lanes) {
      const queued = lane.queue.splice(0);
      for (const e of queued) this.settle(e, error());
    }
    this.checkIdle();
  }

  private settle(entry: Entry, outcome: SubmitResult | Error): void {
    if (entry.settled) return;
    entry.settled = true;
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
