/**
 * Scheduler policy over fake pools: device choice, admission bounds, our own queue (deadline and
 * cancel of queued work), cancel flags of running work, worker error mapping and drain. No threads.
 */
import assert from 'node:assert/strict';
import {
  CancelledError,
  DeadlineExceededError,
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../src/common/errors';
import { CANCEL_BY_CLIENT, CANCEL_BY_DEADLINE, CANCEL_NONE, type WorkerResult, type WorkerTask } from '../../src/common/protocol';
import { type PoolLike, Scheduler, type SubmitResult } from '../../src/server/scheduler';
import { CancelSlots } from '../../src/server/cancel-slots';
import { waitFor } from '../helpers/wait';

/** A task the fake pool received; the test settles it. */
interface Call {
  task: WorkerTask;
  resolve(r: WorkerResult): void;
  reject(e: Error): void;
}

/** A pool whose tasks finish only when the test says so. */
class FakePool implements PoolLike {
  readonly calls: Call[] = [];
  workers = 1;
  ready = false;
  closed = false;
  constructor(
    readonly device: string,
    readonly cancelFlags: SharedArrayBuffer,
  ) {}
  async start(): Promise<void> {
    this.ready = true;
  }
  run(task: WorkerTask): Promise<WorkerResult> {
    return new Promise((resolve, reject) => this.calls.push({ task, resolve, reject }));
  }
  busyRatio(): number {
    return 0.25;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  private readonly done = new Set<number>();
  /** Settles call `i` (in arrival order) with `result`. */
  finish(i: number, result: WorkerResult = OK(this.device)): void {
    assert.ok(i < this.calls.length && !this.done.has(i), `call ${i} on ${this.device} is not pending`);
    this.done.add(i);
    this.calls[i].resolve(result);
  }
}

const OK = (device: string): WorkerResult => ({
  ok: true,
  items: [],
  timings: { preprocess: 0, vision: 0, encoder: 0, decoder: 0, postprocess: 0, total: 0 },
  device,
});
const TASK = { requests: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Lets promise callbacks (dispatch, settle, pump) run. */
const tick = () => sleep(0);

async function setup(opts: { devices?: number; maxInFlight?: number; maxQueue?: number; onQueueWait?: (d: string, ms: number) => void } = {}) {
  const devices = opts.devices ?? 1;
  const maxInFlight = opts.maxInFlight ?? 1;
  const cancelSlots = CancelSlots.forDevices(devices, maxInFlight);
  const flagsBuffer = cancelSlots.buffer;
  const pools = Array.from({ length: devices }, (_, i) => new FakePool(`cpu:${i}`, flagsBuffer));
  const scheduler = new Scheduler({ pools, cancelSlots, maxInFlightPerDevice: maxInFlight, maxQueuePerDevice: opts.maxQueue ?? 1, onQueueWait: opts.onQueueWait });
  await scheduler.start();
  return { scheduler, pools, flags: new Int32Array(flagsBuffer) };
}

/** Keeps a rejection from being reported as unhandled before the test awaits it. */
function settled<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe('Scheduler', () => {
  it('rejects with UNAVAILABLE before start', async () => {
    const cancelSlots = new CancelSlots(4);
    const scheduler = new Scheduler({ pools: [new FakePool('cpu:0', cancelSlots.buffer)], cancelSlots, maxInFlightPerDevice: 1, maxQueuePerDevice: 1 });
    await assert.rejects(scheduler.submit(TASK, { requestId: 'r' }), UnavailableError);
  });

  it('refuses pools with different cancel buffers and too few slots', () => {
    const shared = new CancelSlots(4);
    assert.throws(
      () => new Scheduler({ pools: [new FakePool('a', shared.buffer), new FakePool('b', new CancelSlots(4).buffer)], cancelSlots: shared, maxInFlightPerDevice: 1, maxQueuePerDevice: 0 }),
      /share the scheduler's/,
    );
    const small = new CancelSlots(3);
    assert.throws(() => new Scheduler({ pools: [new FakePool('a', small.buffer), new FakePool('b', small.buffer)], cancelSlots: small, maxInFlightPerDevice: 2, maxQueuePerDevice: 0 }), /need 4/);
  });

  it('sends each request to the least-loaded device, round-robin on ties', async () => {
    const { scheduler, pools } = await setup({ devices: 2, maxInFlight: 1, maxQueue: 2 });
    const results: Array<Promise<SubmitResult>> = [];
    for (let i = 0; i < 4; i++) results.push(scheduler.submit(TASK, { requestId: `r${i}` }));
    await tick();
    // r0 → cpu:0 (tie), r1 → cpu:1 (less loaded), r2 → cpu:0 (tie, round-robin), r3 → cpu:1.
    assert.deepEqual(
      scheduler.stats().map((s) => [s.device, s.inFlight, s.queued]),
      [
        ['cpu:0', 1, 1],
        ['cpu:1', 1, 1],
      ],
    );
    // cpu:1 finishes its running request and its queued one starts; cpu:0 still has 2, cpu:1 has 1.
    pools[1].finish(0);
    await tick();
    assert.equal(pools[1].calls.length, 2);
    const next = scheduler.submit(TASK, { requestId: 'r4' });
    await tick();
    assert.deepEqual(
      scheduler.stats().map((s) => s.inFlight + s.queued),
      [2, 2],
      'r4 went to cpu:1, the less-loaded device',
    );
    const stats = scheduler.stats();
    assert.equal(stats[0].busyRatio, 0.25);
    assert.equal(stats[0].workers, 1);
    // Finish everything and check who ran what.
    pools[0].finish(0);
    await tick();
    pools[0].finish(1);
    pools[1].finish(1);
    await tick();
    pools[1].finish(2);
    const devices = (await Promise.all([...results, next])).map((r) => r.device);
    assert.deepEqual(devices, ['cpu:0', 'cpu:1', 'cpu:0', 'cpu:1', 'cpu:1']);
  });

  it('rejects with RESOURCE_EXHAUSTED at once when every device is full, naming the bound', async () => {
    const { scheduler, pools } = await setup({ devices: 2, maxInFlight: 1, maxQueue: 1 });
    const accepted = [0, 1, 2, 3].map((i) => settled(scheduler.submit(TASK, { requestId: `r${i}` })));
    await tick();
    const over = settled(scheduler.submit(TASK, { requestId: 'over' }));
    // Refused without waiting: settled before even a zero-delay timer fires, with every accepted request still running.
    const first = await Promise.race([over, tick().then(() => 'still pending' as const)]);
    assert.ok(first !== 'still pending', 'refused without waiting');
    assert.ok(!first.ok);
    assert.ok(first.error instanceof ResourceExhaustedError, String(first.error));
    assert.match(first.error.message, /at most 1 and queues at most 1/);
    // Draining the fakes lets everything accepted finish.
    pools[0].finish(0);
    pools[1].finish(0);
    await tick();
    pools[0].finish(1);
    pools[1].finish(1);
    assert.ok((await Promise.all(accepted)).every((r) => r.ok));
  });

  it('never runs a queued request whose deadline passed', async () => {
    const waits: number[] = [];
    const { scheduler, pools } = await setup({ maxInFlight: 1, maxQueue: 2, onQueueWait: (_d, ms) => waits.push(ms) });
    const first = scheduler.submit(TASK, { requestId: 'running' });
    const queued = settled(scheduler.submit(TASK, { requestId: 'queued', deadline: Date.now() + 40 }));
    // Admission is synchronous: checked before any timer (the deadline's included) can run.
    assert.equal(scheduler.stats()[0].queued, 1);
    const q = await queued;
    assert.ok(!q.ok && q.error instanceof DeadlineExceededError, 'rejected while queued');
    assert.equal(scheduler.stats()[0].queued, 0, 'removed from the queue');
    pools[0].finish(0);
    await first;
    await tick();
    assert.equal(pools[0].calls.length, 1, 'the expired request never reached the pool');
    assert.equal(waits.length, 1);
    // Already expired on arrival: refused without running.
    await assert.rejects(scheduler.submit(TASK, { requestId: 'late', deadline: Date.now() - 1 }), DeadlineExceededError);
    assert.equal(pools[0].calls.length, 1);
  });

  it('removes a queued request when the client cancels it', async () => {
    const { scheduler, pools } = await setup({ maxInFlight: 1, maxQueue: 2 });
    const first = scheduler.submit(TASK, { requestId: 'running' });
    const ac = new AbortController();
    const queued = settled(scheduler.submit(TASK, { requestId: 'queued', signal: ac.signal }));
    const third = scheduler.submit(TASK, { requestId: 'third' });
    await tick();
    ac.abort();
    const q = await queued;
    assert.ok(!q.ok && q.error instanceof CancelledError);
    pools[0].finish(0);
    await first;
    await tick();
    // The next one in FIFO order runs; the cancelled one was skipped.
    assert.equal(pools[0].calls.length, 2);
    pools[0].finish(1);
    assert.equal((await third).device, 'cpu:0');
    // Pre-aborted signal: refused without running.
    await assert.rejects(scheduler.submit(TASK, { requestId: 'x', signal: AbortSignal.abort() }), CancelledError);
  });

  it('sets CANCEL_BY_DEADLINE on a running request when its deadline passes, and maps the worker answer', async () => {
    const { scheduler, pools, flags } = await setup();
    const ac = new AbortController();
    // 300 ms: the check that the flag is still clear runs one zero-delay timer after submit, far sooner.
    const p = settled(scheduler.submit(TASK, { requestId: 'r', deadline: Date.now() + 300, signal: ac.signal }));
    await tick();
    const slot = pools[0].calls[0].task.cancelSlot;
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE);
    await waitFor(() => Atomics.load(flags, slot) === CANCEL_BY_DEADLINE, { what: 'the deadline timer to set CANCEL_BY_DEADLINE' });
    // A later client cancel does not overwrite the first cause.
    ac.abort();
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_DEADLINE);
    pools[0].finish(0, { ok: false, error: { kind: 'deadline_exceeded', message: 'deadline exceeded; generation stopped after 3 decoder steps' } });
    const r = await p;
    assert.ok(!r.ok && r.error instanceof DeadlineExceededError);
    await tick();
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE, 'slot reset for reuse');
  });

  it('sets CANCEL_BY_CLIENT on a running request when the client cancels', async () => {
    const { scheduler, pools, flags } = await setup();
    const ac = new AbortController();
    const p = settled(scheduler.submit(TASK, { requestId: 'r', deadline: Date.now() + 60_000, signal: ac.signal }));
    await tick();
    const slot = pools[0].calls[0].task.cancelSlot;
    ac.abort();
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_CLIENT);
    pools[0].finish(0, { ok: false, error: { kind: 'cancelled', message: 'cancelled by the client' } });
    const r = await p;
    assert.ok(!r.ok && r.error instanceof CancelledError);
  });

  it('maps worker errors to ServiceErrors and recycles cancel slots', async () => {
    const { scheduler, pools, flags } = await setup({ maxInFlight: 1, maxQueue: 0 });
    const cases: Array<[WorkerResult | Error, (e: unknown) => boolean]> = [
      [{ ok: false, error: { kind: 'invalid_argument', field: 'text', message: '`text` is not allowed for task <OD>' } }, (e) => e instanceof InvalidArgumentError && e.field === 'text'],
      [{ ok: false, error: { kind: 'internal', message: 'onnx exploded' } }, (e) => e instanceof InternalError && /request r1/.test(e.message)],
      [new UnavailableError('worker on cpu:0 died during the request; retry'), (e) => e instanceof UnavailableError],
      [new Error('odd'), (e) => e instanceof InternalError],
    ];
    for (const [i, [answer, check]] of cases.entries()) {
      const p = settled(scheduler.submit(TASK, { requestId: `r${i}` }));
      await tick();
      const call = pools[0].calls[i];
      if (answer instanceof Error) call.reject(answer);
      else call.resolve(answer);
      const r = await p;
      assert.ok(!r.ok && check(r.error), `case ${i}: ${r.ok ? 'resolved' : String(r.error)}`);
    }
    // Many sequential requests on a small buffer: slots come back.
    for (let i = 0; i < flags.length * 3; i++) {
      const p = scheduler.submit(TASK, { requestId: `s${i}` });
      await tick();
      pools[0].finish(pools[0].calls.length - 1);
      await p;
    }
  });

  it('drain: refuses new work, lets queued and running work finish within the grace period', async () => {
    const { scheduler, pools } = await setup({ maxInFlight: 1, maxQueue: 1 });
    const running = scheduler.submit(TASK, { requestId: 'a' });
    const queued = scheduler.submit(TASK, { requestId: 'b' });
    await tick();
    const drained = scheduler.drain(5_000);
    await assert.rejects(scheduler.submit(TASK, { requestId: 'c' }), UnavailableError);
    pools[0].finish(0);
    await running;
    await tick();
    pools[0].finish(1);
    await queued;
    await drained;
    await scheduler.close();
    assert.ok(pools[0].closed);
  });

  it('drain: after the grace period rejects what is queued and leaves running work alone', async () => {
    const { scheduler, pools, flags } = await setup({ maxInFlight: 1, maxQueue: 1 });
    const running = scheduler.submit(TASK, { requestId: 'a' });
    const queued = settled(scheduler.submit(TASK, { requestId: 'b' }));
    await tick();
    const t0 = Date.now();
    await scheduler.drain(50);
    assert.ok(Date.now() - t0 >= 45);
    const q = await queued;
    assert.ok(!q.ok && q.error instanceof UnavailableError);
    const slot = pools[0].calls[0].task.cancelSlot;
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE, 'the running request was not cancelled');
    pools[0].finish(0);
    assert.equal((await running).device, 'cpu:0');
    assert.equal(pools[0].calls.length, 1, 'the queued request never ran');
  });
});
