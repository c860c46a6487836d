/**
 * Scheduler policy over fake pools: device choice, admission bounds, batching, our own queue
 * (deadline and cancel of queued work), cancel flags of running work, early answers, worker error
 * mapping and drain. No threads.
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
import {
  CANCEL_BY_CLIENT,
  CANCEL_BY_DEADLINE,
  CANCEL_BY_SHUTDOWN,
  CANCEL_NONE,
  type BatchShape,
  type WorkerItemOutcome,
  type WorkerResult,
  type WorkerTask,
} from '../../src/common/protocol';
import { type PoolLike, type ScheduledRequest, Scheduler, SHUTTING_DOWN, type SubmitResult } from '../../src/server/scheduler';
import type { BatchLimits } from '../../src/server/batcher';
import { CancelSlots } from '../../src/server/cancel-slots';
import { waitFor } from '../helpers/wait';

/** A task the fake pool received; the test settles it. */
interface Call {
  task: WorkerTask;
  /** The scheduler's early-outcome listener for this batch. */
  early?: (index: number, outcome: WorkerItemOutcome) => void;
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
  run(task: WorkerTask, early?: (index: number, outcome: WorkerItemOutcome) => void): Promise<WorkerResult> {
    return new Promise((resolve, reject) => this.calls.push({ task, early, resolve, reject }));
  }
  busyRatio(): number {
    return 0.25;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  private readonly done = new Set<number>();
  /** Settles call `i` (in arrival order) with `result`. */
  finish(i: number, result?: WorkerResult): void {
    assert.ok(i < this.calls.length && !this.done.has(i), `call ${i} on ${this.device} is not pending`);
    this.done.add(i);
    this.calls[i].resolve(result ?? OK(this.device, this.calls[i].task));
  }
  /** Fails every item of call `i` with the same worker error. */
  fail(i: number, error: Extract<WorkerItemOutcome, { ok: false }>['error']): void {
    const task = this.calls[i].task;
    this.finish(i, { ...OK(this.device, task), outcomes: task.items.map(() => ({ ok: false as const, error })) } as WorkerResult);
  }
}

const TIMINGS = { preprocess: 1, vision: 2, encoder: 3, decoder: 4, postprocess: 5, total: 15 };
const ITEM_OK: WorkerItemOutcome = { ok: true, items: [], timings: TIMINGS, steps: 7, startedAt: Date.now() };
const OK = (device: string, task: WorkerTask): WorkerResult => ({
  ok: true,
  outcomes: task.items.map(() => ITEM_OK),
  batch: {
    requests: task.items.length,
    rows: task.items.length,
    steps: 7,
    rowSteps: 7 * task.items.length,
    decodeMs: 4,
    decoderRunMs: 3,
    decoderBytes: { hostToDevice: 10, deviceToHost: 20 },
    shared: { preprocess: 1, vision: 2, encoder: 3 },
  },
  device,
});
const PROMPT = { image: new Uint8Array(1), task: '<OD>' as const };
/** One prompt, greedy: one decoder row. */
const TASK: ScheduledRequest = { prompts: [PROMPT] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Lets promise callbacks (dispatch, settle, pump) run. */
const tick = () => sleep(0);

async function setup(
  opts: {
    devices?: number;
    maxInFlight?: number;
    maxQueue?: number;
    batching?: BatchLimits;
    onBatchStart?: (d: string, shape: BatchShape, waits: number[]) => void;
  } = {},
) {
  const devices = opts.devices ?? 1;
  const maxInFlight = opts.maxInFlight ?? 1;
  const cancelSlots = CancelSlots.forDevices(devices, maxInFlight, opts.batching?.maxBatchRows ?? 1);
  const flagsBuffer = cancelSlots.buffer;
  const pools = Array.from({ length: devices }, (_, i) => new FakePool(`cpu:${i}`, flagsBuffer));
  const stopped: string[] = [];
  const scheduler = new Scheduler({
    pools,
    cancelSlots,
    maxInFlightPerDevice: maxInFlight,
    maxQueuePerDevice: opts.maxQueue ?? 1,
    ...(opts.batching ? { batching: () => opts.batching! } : {}),
    onBatchStart: opts.onBatchStart,
    onStoppedInBatch: (id) => stopped.push(id),
  });
  await scheduler.start();
  return { scheduler, pools, flags: new Int32Array(flagsBuffer), stopped };
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
    const scheduler = new Scheduler({
      pools: [new FakePool('cpu:0', cancelSlots.buffer)],
      cancelSlots,
      maxInFlightPerDevice: 1,
      maxQueuePerDevice: 1,
    });
    await assert.rejects(scheduler.submit(TASK, { requestId: 'r' }), UnavailableError);
  });

  it('refuses pools with different cancel buffers and too few slots', () => {
    const shared = new CancelSlots(4);
    assert.throws(
      () =>
        new Scheduler({
          pools: [new FakePool('a', shared.buffer), new FakePool('b', new CancelSlots(4).buffer)],
          cancelSlots: shared,
          maxInFlightPerDevice: 1,
          maxQueuePerDevice: 0,
        }),
      /share the scheduler's/,
    );
    const small = new CancelSlots(3);
    assert.throws(
      () =>
        new Scheduler({
          pools: [new FakePool('a', small.buffer), new FakePool('b', small.buffer)],
          cancelSlots: small,
          maxInFlightPerDevice: 2,
          maxQueuePerDevice: 0,
        }),
      /need 4/,
    );
    // Batches of up to 4 requests on 2 devices × 2 workers: 16 slots.
    const batching = () => ({ maxBatchRows: 4, maxQueueDelayMs: 0 });
    const eight = new CancelSlots(8);
    assert.throws(
      () =>
        new Scheduler({
          pools: [new FakePool('a', eight.buffer), new FakePool('b', eight.buffer)],
          cancelSlots: eight,
          maxInFlightPerDevice: 2,
          maxQueuePerDevice: 0,
          batching,
        }),
      /need 16/,
    );
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
    assert.match(first.error.message, /each runs 1 batch\(es\) and queues at most 1 requests/);
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
    const { scheduler, pools } = await setup({ maxInFlight: 1, maxQueue: 2, onBatchStart: (_d, _s, w) => waits.push(...w) });
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

  it('answers a running request at its deadline at once, sets CANCEL_BY_DEADLINE, and frees the slot when the batch ends', async () => {
    const { scheduler, pools, flags, stopped } = await setup();
    const ac = new AbortController();
    // 300 ms: the check that the flag is still clear runs one zero-delay timer after submit, far sooner.
    const p = settled(scheduler.submit(TASK, { requestId: 'r', deadline: Date.now() + 300, signal: ac.signal }));
    await tick();
    const slot = pools[0].calls[0].task.items[0].cancelSlot;
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE);
    const r = await p;
    // Answered while the worker still runs the batch.
    assert.ok(!r.ok && r.error instanceof DeadlineExceededError, String(!r.ok && r.error));
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_DEADLINE);
    assert.equal(scheduler.stats()[0].inFlight, 0, 'no longer counted as running');
    // A later client cancel does not overwrite the first cause.
    ac.abort();
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_DEADLINE);
    pools[0].fail(0, { kind: 'deadline_exceeded', message: 'deadline exceeded; generation stopped after 3 decoder steps' });
    await waitFor(() => stopped.length === 1, { what: 'the worker to confirm the request stopped' });
    assert.deepEqual(stopped, ['r']);
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE, 'slot reset for reuse');
  });

  it('sets CANCEL_BY_CLIENT on a running request when the client cancels', async () => {
    const { scheduler, pools, flags } = await setup();
    const ac = new AbortController();
    const p = settled(scheduler.submit(TASK, { requestId: 'r', deadline: Date.now() + 60_000, signal: ac.signal }));
    await tick();
    const slot = pools[0].calls[0].task.items[0].cancelSlot;
    ac.abort();
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_CLIENT);
    const r = await p;
    assert.ok(!r.ok && r.error instanceof CancelledError, 'answered at once');
    pools[0].fail(0, { kind: 'cancelled', message: 'cancelled by the client' });
  });

  it('maps worker errors to ServiceErrors and recycles cancel slots', async () => {
    const { scheduler, pools, flags } = await setup({ maxInFlight: 1, maxQueue: 0 });
    type Answer = Extract<WorkerItemOutcome, { ok: false }>['error'] | WorkerResult | Error;
    const cases: Array<[Answer, (e: unknown) => boolean]> = [
      [
        { kind: 'invalid_argument', field: 'text', message: '`text` is not allowed for task <OD>' },
        (e) => e instanceof InvalidArgumentError && e.field === 'text',
      ],
      [{ kind: 'internal', message: 'onnx exploded' }, (e) => e instanceof InternalError && /request r1/.test(e.message)],
      [
        { ok: false, error: { kind: 'internal', message: 'the batch could not run' } },
        (e) => e instanceof InternalError && /batch of r2/.test(e.message),
      ],
      [new UnavailableError('worker on cpu:0 died during the request; retry'), (e) => e instanceof UnavailableError],
      [new Error('odd'), (e) => e instanceof InternalError],
    ];
    for (const [i, [answer, check]] of cases.entries()) {
      const p = settled(scheduler.submit(TASK, { requestId: `r${i}` }));
      await tick();
      const call = pools[0].calls[i];
      if (answer instanceof Error) call.reject(answer);
      else if ('ok' in answer) call.resolve(answer);
      else pools[0].fail(i, answer);
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

  it('drain: after the grace period answers running and queued requests UNAVAILABLE, never CANCELLED', async () => {
    const { scheduler, pools, flags, stopped } = await setup({ maxInFlight: 1, maxQueue: 1 });
    const running = settled(scheduler.submit(TASK, { requestId: 'a' }));
    const queued = settled(scheduler.submit(TASK, { requestId: 'b' }));
    await tick();
    const slot = pools[0].calls[0].task.items[0].cancelSlot;
    const t0 = Date.now();
    const cut = await scheduler.drain(50);
    assert.ok(Date.now() - t0 >= 45, 'waited out the grace period');
    assert.deepEqual(cut, { running: 1, queued: 1 });
    for (const r of [await running, await queued]) {
      assert.ok(!r.ok && r.error instanceof UnavailableError, String(!r.ok && r.error));
      assert.equal(r.error.message, SHUTTING_DOWN);
      assert.ok(r.error.retryable);
    }
    // Answered while the worker still runs the batch: it is asked to drop the rows, not terminated.
    assert.equal(Atomics.load(flags, slot), CANCEL_BY_SHUTDOWN);
    assert.deepEqual(
      scheduler.stats().map((st) => [st.inFlight, st.queued]),
      [[0, 0]],
    );
    assert.equal(pools[0].calls.length, 1, 'the queued request never ran');
    // The worker confirms at its next decoder step; the slot comes back for reuse.
    pools[0].fail(0, { kind: 'unavailable', message: "stopped for the server's shutdown; generation stopped after 2 decoder steps" });
    await waitFor(() => stopped.length === 1, { what: 'the worker to confirm the request stopped' });
    assert.deepEqual(stopped, ['a']);
    assert.equal(Atomics.load(flags, slot), CANCEL_NONE, 'slot reset for reuse');
    await assert.rejects(scheduler.submit(TASK, { requestId: 'late' }), UnavailableError);
    await scheduler.close();
    assert.ok(pools[0].closed);
  });

  it('drain: cuts every request of a running batch and what waits on every device', async () => {
    const { scheduler, pools, flags } = await setup({ devices: 2, maxQueue: 4, batching: { maxBatchRows: 4, maxQueueDelayMs: 0 } });
    // Two blockers (one per device) keep the workers busy while three requests gather on cpu:0.
    const blockers = [0, 1].map((i) => scheduler.submit(TASK, { requestId: `blocker${i}` }));
    await tick();
    const batch = [0, 1, 2].map((i) => settled(scheduler.submit(TASK, { requestId: `b${i}` })));
    await tick();
    const onCpu0 = scheduler.stats()[0].queued;
    const onCpu1 = scheduler.stats()[1].queued;
    assert.equal(onCpu0 + onCpu1, 3);
    pools[0].finish(0);
    pools[1].finish(0);
    await Promise.all(blockers);
    await waitFor(() => pools[0].calls.length + pools[1].calls.length === 4, { what: 'the gathered batches to start' });
    const late = settled(scheduler.submit(TASK, { requestId: 'queued' }));
    await tick();
    const cut = await scheduler.drain(0);
    assert.deepEqual(cut, { running: 3, queued: 1 });
    for (const r of [...(await Promise.all(batch)), await late])
      assert.ok(!r.ok && r.error instanceof UnavailableError, String(!r.ok && r.error));
    const cutSlots = pools.flatMap((p) => p.calls.slice(1).flatMap((c) => c.task.items.map((it) => it.cancelSlot)));
    assert.equal(cutSlots.length, 3, 'the three gathered requests ran');
    for (const slot of cutSlots) assert.equal(Atomics.load(flags, slot), CANCEL_BY_SHUTDOWN);
    for (const p of pools) for (let i = 1; i < p.calls.length; i++) p.finish(i);
    await scheduler.close();
  });

  it('stopAll (a forced stop) ends a drain under way at once and answers everything UNAVAILABLE', async () => {
    const { scheduler, pools, flags } = await setup({ maxInFlight: 1, maxQueue: 2 });
    const running = settled(scheduler.submit(TASK, { requestId: 'a' }));
    const queued = [settled(scheduler.submit(TASK, { requestId: 'b' })), settled(scheduler.submit(TASK, { requestId: 'c' }))];
    await tick();
    let drained = false;
    // A grace period far longer than any test: only stopAll can end this drain.
    const drain = scheduler.drain(3_600_000).then((c) => ((drained = true), c));
    await tick();
    assert.equal(drained, false, 'the drain waits for the running request');
    assert.deepEqual(scheduler.stopAll(), { running: 1, queued: 2 });
    assert.deepEqual(await drain, { running: 0, queued: 0 }, 'nothing was left for the drain to cut');
    for (const r of [await running, ...(await Promise.all(queued))]) assert.ok(!r.ok && r.error instanceof UnavailableError);
    assert.equal(Atomics.load(flags, pools[0].calls[0].task.items[0].cancelSlot), CANCEL_BY_SHUTDOWN);
    pools[0].finish(0);
    await scheduler.close();
  });

  it('drain: a request that finishes within the grace period completes; nothing is cut', async () => {
    const { scheduler, pools, flags } = await setup({ maxInFlight: 1, maxQueue: 1 });
    const running = scheduler.submit(TASK, { requestId: 'a' });
    await tick();
    const drain = scheduler.drain(3_600_000);
    pools[0].finish(0);
    assert.equal((await running).device, 'cpu:0');
    assert.deepEqual(await drain, { running: 0, queued: 0 });
    assert.equal(Atomics.load(flags, pools[0].calls[0].task.items[0].cancelSlot), CANCEL_NONE);
  });

  it("maps the worker's `unavailable` (stopped for shutdown) to UNAVAILABLE", async () => {
    const { scheduler, pools } = await setup();
    const p = settled(scheduler.submit(TASK, { requestId: 'r' }));
    await tick();
    pools[0].fail(0, { kind: 'unavailable', message: "stopped for the server's shutdown; generation stopped after 1 decoder steps" });
    const r = await p;
    assert.ok(!r.ok && r.error instanceof UnavailableError, String(!r.ok && r.error));
  });

  describe('batching', () => {
    const BATCH: BatchLimits = { maxBatchRows: 8, maxQueueDelayMs: 0 };
    const beams = (n: number, prompts = 1): ScheduledRequest => ({ prompts: Array.from({ length: prompts }, () => PROMPT), numBeams: n });

    it('gathers what waits while the worker is busy into one batch, in arrival order, within the row limit', async () => {
      const shapes: BatchShape[] = [];
      const { scheduler, pools } = await setup({ maxQueue: 20, batching: BATCH, onBatchStart: (_d, shape) => shapes.push(shape) });
      const first = scheduler.submit(TASK, { requestId: 'first' });
      // 3 + 3 + 1 + 3 rows wait: the first three fit in 8 rows, the fourth waits for the next batch.
      const queued = [beams(3), beams(3), TASK, beams(3)].map((r, i) => scheduler.submit(r, { requestId: `q${i}` }));
      await tick();
      assert.equal(pools[0].calls.length, 1);
      pools[0].finish(0);
      await first;
      await waitFor(() => pools[0].calls.length === 2, { what: 'the second batch' });
      // Only requests that share a decoder loop (the same beams) go together: q2 (greedy) waits.
      assert.deepEqual(
        pools[0].calls[1].task.items.map((it) => it.prompts.length),
        [1, 1],
      );
      assert.equal(pools[0].calls[1].task.numBeams, 3);
      pools[0].finish(1);
      await waitFor(() => pools[0].calls.length === 3, { what: 'the third batch' });
      pools[0].finish(2);
      await waitFor(() => pools[0].calls.length === 4, { what: 'the fourth batch' });
      pools[0].finish(3);
      const done = await Promise.all(queued);
      assert.deepEqual(
        shapes.map((x) => [x.requests, x.rows]),
        [
          [1, 1],
          [2, 6],
          [1, 1],
          [1, 3],
        ],
      );
      assert.deepEqual(
        done.map((d) => d.batch.requests),
        [2, 2, 1, 1],
      );
      assert.deepEqual(
        done.map((d) => d.result.steps),
        [7, 7, 7, 7],
      );
    });

    it('a request larger than the row limit still runs, alone', async () => {
      const { scheduler, pools } = await setup({ batching: { maxBatchRows: 4, maxQueueDelayMs: 0 } });
      const big = scheduler.submit(beams(3, 5), { requestId: 'big' });
      await tick();
      assert.equal(pools[0].calls[0].task.items.length, 1);
      pools[0].finish(0);
      assert.equal((await big).batch.rows, 15);
    });

    it('a free worker waits up to the queue delay for a batch to fill, and no longer', async () => {
      const shapes: BatchShape[] = [];
      const { scheduler, pools } = await setup({
        maxQueue: 8,
        batching: { maxBatchRows: 3, maxQueueDelayMs: 60_000 },
        onBatchStart: (_d, shape) => shapes.push(shape),
      });
      const a = scheduler.submit(TASK, { requestId: 'a' });
      const b = scheduler.submit(TASK, { requestId: 'b' });
      await tick();
      assert.equal(pools[0].calls.length, 0, 'two rows of three: waiting for the third');
      assert.equal(scheduler.stats()[0].queued, 2);
      const c = scheduler.submit(TASK, { requestId: 'c' });
      await tick();
      assert.equal(pools[0].calls.length, 1, 'full: sent without waiting out the delay');
      pools[0].finish(0);
      const done = await Promise.all([a, b, c]);
      assert.deepEqual(shapes, [{ requests: 3, rows: 3 }]);
      for (const d of done) assert.ok(d.batchWaitMs <= d.queueMs);
    });

    it('answers each request of a batch as soon as the worker reports it, before the batch ends', async () => {
      const { scheduler, pools } = await setup({ maxQueue: 4, batching: BATCH });
      const blocker = scheduler.submit(TASK, { requestId: 'blocker' });
      const early = settled(scheduler.submit(TASK, { requestId: 'early' }));
      const late = settled(scheduler.submit(TASK, { requestId: 'late' }));
      await tick();
      pools[0].finish(0);
      await blocker;
      await waitFor(() => pools[0].calls.length === 2, { what: 'the batch of two' });
      const call = pools[0].calls[1];
      call.early!(0, { ...ITEM_OK, steps: 2 });
      const e = await early;
      assert.ok(e.ok && e.value.result.steps === 2, 'answered from the early outcome');
      assert.equal(scheduler.stats()[0].inFlight, 1, 'its batch-mate still runs');
      pools[0].finish(1);
      const l = await late;
      assert.ok(l.ok && l.value.result.steps === 7);
    });

    it('a cancelled request of a running batch ends alone; its batch-mates complete', async () => {
      const { scheduler, pools, flags } = await setup({ maxQueue: 4, batching: BATCH });
      const blocker = scheduler.submit(TASK, { requestId: 'blocker' });
      const ac = new AbortController();
      const cancelled = settled(scheduler.submit(TASK, { requestId: 'cancelled', signal: ac.signal }));
      const mate = scheduler.submit(TASK, { requestId: 'mate' });
      await tick();
      pools[0].finish(0);
      await blocker;
      await waitFor(() => pools[0].calls.length === 2, { what: 'the batch of two' });
      const [slotA, slotB] = pools[0].calls[1].task.items.map((it) => it.cancelSlot);
      ac.abort();
      const c = await cancelled;
      assert.ok(!c.ok && c.error instanceof CancelledError);
      assert.equal(Atomics.load(flags, slotA), CANCEL_BY_CLIENT);
      assert.equal(Atomics.load(flags, slotB), CANCEL_NONE, "the batch-mate's slot is untouched");
      pools[0].finish(1, {
        ...OK('cpu:0', pools[0].calls[1].task),
        outcomes: [{ ok: false, error: { kind: 'cancelled', message: 'stopped' } }, ITEM_OK],
      } as WorkerResult);
      assert.equal((await mate).device, 'cpu:0');
    });

    it('a worker that dies fails every request of its batch with UNAVAILABLE, and the next batch runs', async () => {
      const { scheduler, pools } = await setup({ maxQueue: 4, batching: BATCH });
      const blocker = scheduler.submit(TASK, { requestId: 'blocker' });
      const batch = [0, 1, 2].map((i) => settled(scheduler.submit(TASK, { requestId: `b${i}` })));
      await tick();
      pools[0].finish(0);
      await blocker;
      await waitFor(() => pools[0].calls.length === 2, { what: 'the batch of three' });
      pools[0].calls[1].reject(new UnavailableError('worker on cpu:0 died during the request; retry'));
      for (const r of await Promise.all(batch)) assert.ok(!r.ok && r.error instanceof UnavailableError);
      const next = scheduler.submit(TASK, { requestId: 'next' });
      await tick();
      pools[0].finish(2);
      assert.equal((await next).device, 'cpu:0');
    });

    it('admission stays exact: a free worker slot plus the queue bound, whatever the batching', async () => {
      const { scheduler, pools } = await setup({ maxQueue: 2, batching: { maxBatchRows: 8, maxQueueDelayMs: 60_000 } });
      const outcomes = await Promise.all(
        [0, 1, 2, 3, 4, 5].map(async (i) => {
          const r = settled(scheduler.submit(TASK, { requestId: `r${i}` }));
          return Promise.race([r, tick().then(() => 'pending' as const)]);
        }),
      );
      const refused = outcomes.filter((o) => o !== 'pending' && !o.ok && o.error instanceof ResourceExhaustedError).length;
      assert.equal(refused, 3, '1 free worker slot + 2 queued accepted, 3 refused');
      await scheduler.drain(0);
      assert.equal(pools[0].calls.length, 1, 'drain sends the gathering batch at once');
      pools[0].finish(0);
    });
  });
});
