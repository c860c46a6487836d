/**
 * Real worker threads on tiny synthetic models: pool start (ready only after warm-up), results,
 * cooperative deadline and cancel between decoder steps (the worker survives), request errors as
 * INVALID_ARGUMENT, a crashing worker replaced warm, and device start failure / CPU fallback.
 */
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { CancelledError, DeadlineExceededError, InvalidArgumentError, WorkerInputError, UnavailableError } from '../../src/common/errors';
import type { WorkerInit } from '../../src/common/protocol';
import { DevicePool, WorkerStartError } from '../../src/server/pools';
import { Scheduler } from '../../src/server/scheduler';
import { CancelSlots } from '../../src/server/cancel-slots';
import { carTiny, randomTiny } from '../helpers/synth-models';
import { waitFor } from '../helpers/wait';
import { dtypesFrom } from '../../src/hub/dtypes';

function initFor(modelDir: string, device: string, extra: Partial<WorkerInit> = {}): WorkerInit {
  return {
    modelDir,
    device,
    provider: 'cpu',
    deviceId: 0,
    allowCpuFallback: false,
    cpuMemoryArena: true,
    intraOpNumThreads: 1,
    dtype: dtypesFrom('fp32'),
    cpuFallbackDtype: dtypesFrom('fp32'),
    resample: 'sharp',
    maxPixels: 4096 * 4096,
    maxVisionBatch: 4,
    cancelFlags: CancelSlots.forDevices(1, 1).buffer,
    logLevel: 'info',
    logFormat: 'json',
    logColor: false,
    testHooks: false,
    ...extra,
  };
}

/** A pool of one worker and a scheduler over it (the scheduler owns the cancel flags). */
async function startDevice(
  init: WorkerInit,
  hooks: { onWorkerRestart?: (d: string) => void; onWorkerReady?: (d: string, id: number) => void } = {},
) {
  const cancelSlots = CancelSlots.forDevices(1, 1);
  const pool = new DevicePool({ init: { ...init, cancelFlags: cancelSlots.buffer }, workers: 1, ...hooks });
  /** What the worker said of requests that were answered early (deadline, cancel): `request id → message`. */
  const stopped = new Map<string, string>();
  const scheduler = new Scheduler({
    pools: [pool],
    cancelSlots,
    maxInFlightPerDevice: 1,
    maxQueuePerDevice: 4,
    onStoppedInBatch: (id, _d, message) => stopped.set(id, message),
  });
  await scheduler.start();
  return { pool, scheduler, stopped };
}

describe('worker pool (real threads, tiny models)', function () {
  let image: Buffer;

  before(async function () {
    image = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 30, g: 120, b: 220 } } })
      .png()
      .toBuffer();
  });

  describe('car model', function () {
    let pool: DevicePool;
    let scheduler: Scheduler;
    const events: Array<{ what: 'ready' | 'restart'; at: number; thread?: number }> = [];

    before(async function () {
      const dir = await carTiny();
      ({ pool, scheduler } = await startDevice(initFor(dir, 'cpu:0', { testHooks: true }), {
        onWorkerReady: (_d, id) => events.push({ what: 'ready', at: Date.now(), thread: id }),
        onWorkerRestart: () => events.push({ what: 'restart', at: Date.now() }),
      }));
    });
    after(() => scheduler?.close());

    it('is ready only after the worker loaded and warmed up, then returns the car box', async function () {
      assert.equal(pool.workers, 1);
      assert.equal(pool.provider, 'cpu');
      assert.equal(events.filter((e) => e.what === 'ready').length, 1, 'start() resolved after the ready report');
      const out = await scheduler.submit({ prompts: [{ image, task: '<OD>' }], maxNewTokens: 20 }, { requestId: 'car' });
      assert.equal(out.device, 'cpu:0');
      assert.equal(out.result.items.length, 1);
      const item = out.result.items[0];
      assert.match(item.text, /car<loc_53><loc_333><loc_933><loc_774>/);
      const r = item.result as { bboxes: number[][]; labels: string[] };
      assert.deepEqual(r.labels, ['car']);
      assert.equal(r.bboxes.length, 1);
      assert.ok(out.result.timings.total > 0);
      // The model facts came with the ready report.
      assert.equal(pool.modelInfo?.provider, 'cpu');
      assert.ok(pool.busyRatio() > 0);
    });

    it('answers text for <OD> with INVALID_ARGUMENT naming `text`', async function () {
      await assert.rejects(
        scheduler.submit({ prompts: [{ image, task: '<OD>', text: 'a car' }] }, { requestId: 'bad-text' }),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError, String(err));
          assert.equal(err.field, 'text');
          assert.match(err.message, /`text`/);
          return true;
        },
      );
    });

    it('answers a corrupt image with INVALID_ARGUMENT naming the library field `image` (the service renames it)', async function () {
      const corrupt = Buffer.concat([image.subarray(0, 40), Buffer.alloc(40, 7)]);
      await assert.rejects(
        scheduler.submit({ prompts: [{ image: corrupt, task: '<OD>' }] }, { requestId: 'bad-image' }),
        (err: unknown) => {
          assert.ok(err instanceof WorkerInputError, String(err));
          assert.equal(err.libraryField, 'image');
          assert.match(err.message, /`image`/);
          return true;
        },
      );
      assert.equal(pool.restarts, 0, 'request errors do not cost a worker');
    });

    it('a worker that crashes mid-request fails it with UNAVAILABLE, is replaced warm and serves the next one', async function () {
      const before = pool.threadIds;
      await assert.rejects(
        scheduler.submit({ prompts: [{ image, task: '<OD>' }], crash: true }, { requestId: 'crash' }),
        (err: unknown) => {
          assert.ok(err instanceof UnavailableError, String(err));
          assert.match(err.message, /worker on cpu:0 died during the request; retry/);
          return true;
        },
      );
      assert.equal(pool.restarts, 1);
      // Sent at once, while the replacement still loads: piscina holds it until that worker is warm.
      const t0 = Date.now();
      const out = await scheduler.submit({ prompts: [{ image, task: '<OD>' }], maxNewTokens: 20 }, { requestId: 'after-crash' });
      const done = Date.now();
      assert.deepEqual((out.result.items[0].result as { labels: string[] }).labels, ['car']);
      const ready = events.filter((e) => e.what === 'ready');
      assert.equal(ready.length, 2, 'the replacement reported ready (after its warm-up)');
      const replacement = ready[1];
      assert.ok(replacement.at >= t0 && replacement.at <= done, 'the replacement warmed up while the request waited');
      assert.notDeepEqual(pool.threadIds, before, 'a new thread');
      assert.deepEqual(pool.threadIds, [replacement.thread]);
      assert.equal(pool.workers, 1);
    });
  });

  describe('random model, long generations', function () {
    let pool: DevicePool;
    let scheduler: Scheduler;
    let stopped: Map<string, string>;
    // Never finished here: each test stops it early. 1000 tokens run for seconds even on a fast machine.
    const MAX_NEW_TOKENS = 1000;
    const long = () => ({ prompts: [{ image, task: '<CAPTION>' as const }], numBeams: 3, maxNewTokens: MAX_NEW_TOKENS });
    /** The decoder steps the worker ran before it stopped, from its `generation stopped after N decoder steps`. */
    const stepsBeforeStop = (message: string) => Number(/generation stopped after (\d+) decoder steps/.exec(message)?.[1] ?? NaN);

    before(async function () {
      ({ pool, scheduler, stopped } = await startDevice(initFor(await randomTiny(), 'cpu:1')));
    });
    after(() => scheduler?.close());

    it('stops a running request at its deadline between decoder steps; the same worker serves the next', async function () {
      const threads = pool.threadIds;
      await assert.rejects(scheduler.submit(long(), { requestId: 'deadline', deadline: Date.now() + 400 }), (err: unknown) => {
        assert.ok(err instanceof DeadlineExceededError, String(err));
        assert.match(err.message, /while the request ran/);
        return true;
      });
      // Answered at the deadline; the worker then confirms it dropped the request inside the generation loop.
      await waitFor(() => stopped.get('deadline'), { what: 'the worker to report the request stopped' });
      assert.match(stopped.get('deadline')!, /^deadline exceeded; generation stopped after \d+ decoder steps/);
      assert.ok(stepsBeforeStop(stopped.get('deadline')!) < MAX_NEW_TOKENS, `stopped early: ${stopped.get('deadline')}`);
      const out = await scheduler.submit({ prompts: [{ image, task: '<CAPTION>' }], maxNewTokens: 3 }, { requestId: 'next' });
      assert.equal(out.result.items.length, 1);
      assert.deepEqual(pool.threadIds, threads, 'same worker thread');
      assert.equal(pool.restarts, 0);
    });

    it('stops a running request when the client cancels; the same worker serves the next', async function () {
      const threads = pool.threadIds;
      const ac = new AbortController();
      const running = scheduler.submit(long(), { requestId: 'cancel', signal: ac.signal, deadline: Date.now() + 60_000 });
      // Cancel once the worker has the task (not while it is in our queue).
      // The scheduler's running count: this request's batch was dispatched (the previous test's
      // batch may still be finishing on the worker, so the pool's own count is not this request's).
      await waitFor(() => scheduler.stats()[0].inFlight === 1, { what: 'the request to be dispatched to the worker' });
      ac.abort();
      await assert.rejects(running, (err: unknown) => {
        assert.ok(err instanceof CancelledError, String(err));
        assert.match(err.message, /cancelled by the client while it ran/);
        return true;
      });
      await waitFor(() => stopped.get('cancel'), { what: 'the worker to report the request stopped' });
      assert.match(stopped.get('cancel')!, /^cancelled by the client; generation stopped after \d+ decoder steps/);
      assert.ok(stepsBeforeStop(stopped.get('cancel')!) < MAX_NEW_TOKENS, `stopped early: ${stopped.get('cancel')}`);
      const out = await scheduler.submit({ prompts: [{ image, task: '<CAPTION>' }], maxNewTokens: 3 }, { requestId: 'next' });
      assert.equal(out.result.items.length, 1);
      assert.deepEqual(pool.threadIds, threads);
      assert.equal(pool.restarts, 0);
    });
  });

  describe('devices', function () {
    it('fails to start on cuda:0 without CUDA, with a message naming the device and the provider', async function () {
      const pool = new DevicePool({ init: initFor(await carTiny(), 'cuda:0', { provider: 'cuda', deviceId: 0 }), workers: 1 });
      await assert.rejects(pool.start(), (err: unknown) => {
        assert.ok(err instanceof WorkerStartError, String(err));
        assert.equal(err.device, 'cuda:0');
        assert.match(err.message, /cuda:0/);
        assert.match(err.message, /cuda execution provider/);
        assert.match(err.message, /allowCpuFallback/);
        return true;
      });
      assert.equal(pool.ready, false);
      await pool.close();
    });

    it('falls back to CPU on cuda:0 with allowCpuFallback', async function () {
      const { pool, scheduler } = await startDevice(
        initFor(await carTiny(), 'cuda:0', { provider: 'cuda', deviceId: 0, allowCpuFallback: true }),
      );
      try {
        assert.equal(pool.provider, 'cpu');
        assert.equal(pool.cpuFallback, true);
        assert.equal((await pool.describe()).provider, 'cpu');
        const out = await scheduler.submit({ prompts: [{ image, task: '<OD>' }], maxNewTokens: 20 }, { requestId: 'fallback' });
        assert.equal(out.device, 'cuda:0');
        assert.deepEqual((out.result.items[0].result as { labels: string[] }).labels, ['car']);
      } finally {
        await scheduler.close();
      }
    });
  });
});
