/**
 * Signals and shutdown statuses of `florence2 serve`, as a child process on loopback with tiny
 * synthetic models: a second SIGTERM is logged and the drain goes on, SIGHUP reloads and never
 * stops the server, requests cut by the end of the grace period or by a forced stop (a third
 * signal) are answered UNAVAILABLE (retryable), never CANCELLED, and the exit codes.
 *
 * Every wait is for an observable state (a log line, the scheduler's gauges, the exit); the random
 * model's long generations (seconds) only make sure requests are still running when a signal lands.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import {
  call,
  channelsReady,
  findLogs,
  healthStatus,
  metricSample,
  scrapeMetrics,
  type ServerProcess,
  startServerProcess,
  waitForLog,
} from '../helpers/server-process';
import { waitFor } from '../helpers/wait';
import { carTiny, randomTiny } from '../helpers/synth-models';
import { EXIT } from '../../src/cli/exit-codes';
import { SHUTTING_DOWN } from '../../src/server/scheduler';
import type { DetectResponse__Output } from 'florence2-client/generated/florence2/v1/DetectResponse';

const png = (width: number, height: number, shade = 120) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 200 } } })
    .png()
    .toBuffer();

/** A random tiny model rarely stops early: 1000 new tokens with 3 beams runs for many seconds (about 15 unloaded). */
const LONG = { num_beams: 3, max_new_tokens: 1000 };

/** A call's outcome: 'OK' or the status name, with the details of a failure. */
type Outcome = { code: string; details?: string; generated?: number };

function outcome(p: Promise<DetectResponse__Output>): Promise<Outcome> {
  return p.then(
    (r) => ({ code: 'OK', generated: r.meta!.generated_tokens }),
    (e: grpc.ServiceError) => ({ code: grpc.status[e.code] ?? String(e.code), details: e.details }),
  );
}

/** Waits until `n` requests are admitted on cpu:0 (running or queued, from the scheduler's gauges). */
async function admitted(s: ServerProcess, n: number, what: string): Promise<void> {
  await waitFor(
    async () => {
      const text = await scrapeMetrics(s);
      const running = metricSample(text, 'florence2_inflight_requests', { device: 'cpu:0' }) ?? 0;
      const queued = metricSample(text, 'florence2_queued_requests', { device: 'cpu:0' }) ?? 0;
      return running >= 1 && running + queued === n;
    },
    { what, intervalMs: 20 },
  );
}

/** No log line says a shutdown-cut request was cancelled by the client. */
function assertNoClientCancel(s: ServerProcess, from: number): void {
  const lines = s.logs.slice(from).filter((l) => JSON.stringify(l).includes('cancelled by the client'));
  assert.deepEqual(lines, [], 'a log line says "cancelled by the client"');
  assert.deepEqual(findLogs(s, { code: 'CANCELLED' }, from), [], 'a request was recorded as CANCELLED');
}

describe('shutdown and signals (server process)', function () {
  let image: Buffer;
  let s: ServerProcess | undefined;

  before(async () => {
    image = await png(320, 240, 40);
  });
  afterEach(async () => {
    // A test that failed half-way must not leave its server behind.
    if (s && s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
    s?.client.close();
    s?.health.close();
    s = undefined;
  });

  async function start(args: string[]): Promise<ServerProcess> {
    s = await startServerProcess(['--devices', 'cpu', ...args]);
    await s.serving;
    // Connected now, so the requests below pay no connection setup.
    await channelsReady(s);
    return s;
  }

  it('two SIGTERMs: the second is logged, the drain goes on, all 16 requests in flight complete OK, exit 0', async () => {
    const p = await start(['--model', await randomTiny(), '--max-queue-per-device', '32', '--shutdown-grace-ms', '600000']);
    // Long enough (hundreds of decoder steps each, one worker) to still run when both signals have landed.
    const calls = Array.from({ length: 16 }, () =>
      outcome(call(p.client, 'Detect', { image: { data: image }, options: { num_beams: 1, max_new_tokens: 400 } })),
    );
    await admitted(p, 16, 'all 16 requests to be admitted');
    const from = p.logs.length;
    p.child.kill('SIGTERM');
    await waitForLog(p, { msg: 'shutting down', reason: 'SIGTERM' }, { from });
    p.child.kill('SIGTERM');
    const again = await waitForLog(p, { msg: 'signal received again; the drain goes on' }, { from });
    assert.equal(again.level, 'warn');
    assert.equal(again.signal, 'SIGTERM');
    assert.equal(again.remainingBeforeForcedStop, 1);
    const outcomes = await Promise.all(calls);
    assert.deepEqual(
      outcomes.map((o) => o.code),
      Array.from({ length: 16 }, () => 'OK'),
      JSON.stringify(outcomes),
    );
    for (const o of outcomes) assert.equal(o.generated, 400);
    assert.equal(await p.exited, EXIT.ok);
    // The drain ended on its own: nothing was cut or forced.
    assert.deepEqual(findLogs(p, { msg: /answered UNAVAILABLE/ }, from), []);
    assert.equal(findLogs(p, { msg: 'stopped' }, from)[0]?.forced, false);
  });

  it('SIGHUP: logged and reloaded, the server keeps serving', async () => {
    const p = await start(['--model', await carTiny()]);
    for (let i = 0; i < 2; i++) {
      const from = p.logs.length;
      p.child.kill('SIGHUP');
      await waitForLog(p, { msg: 'signal received; reloading', signal: 'SIGHUP' }, { from });
      const reloaded = await waitForLog(p, { msg: 'reloaded', signal: 'SIGHUP' }, { from });
      assert.ok(Array.isArray(reloaded.reloaded));
      // Still serving: a request succeeds after the signal, and the process has not exited.
      const r = await call<object, DetectResponse__Output>(p.client, 'Detect', { image: { data: image } });
      assert.equal(r.boxes[0].label, 'car');
      assert.equal(await healthStatus(p), 'SERVING');
      assert.equal(p.child.exitCode, null);
      assert.equal(p.child.signalCode, null);
      assert.deepEqual(findLogs(p, { msg: 'shutting down' }, from), []);
    }
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, EXIT.ok);
  });

  it('the grace period ends: the running and the queued requests get UNAVAILABLE, none CANCELLED, exit 0', async () => {
    // A batch holds one LONG request (3 rows), so of three, one runs and two wait in the queue.
    const p = await start(['--model', await randomTiny(), '--max-batch-rows', '3', '--shutdown-grace-ms', '1000']);
    const calls = Array.from({ length: 3 }, () => outcome(call(p.client, 'Detect', { image: { data: image }, options: LONG })));
    await admitted(p, 3, 'the three long requests to be admitted');
    const from = p.logs.length;
    p.child.kill('SIGTERM');
    await waitForLog(p, { msg: 'shutting down', reason: 'SIGTERM' }, { from });
    const outcomes = await Promise.all(calls);
    for (const o of outcomes) {
      assert.equal(o.code, 'UNAVAILABLE', JSON.stringify(outcomes));
      assert.equal(o.details, SHUTTING_DOWN);
    }
    const cut = await waitForLog(p, { msg: 'shutdown grace period ended; the requests left were answered UNAVAILABLE' }, { from });
    assert.deepEqual([cut.running, cut.queued], [1, 2]);
    // The running one was answered at once; its worker dropped its rows between decoder steps, far before the end.
    const stopped = await waitForLog(p, { msg: 'running request stopped in its batch' }, { from });
    const m = /^stopped for the server's shutdown; generation stopped after (\d+) decoder steps/.exec(String(stopped.message));
    assert.ok(m, String(stopped.message));
    assert.ok(Number(m[1]) < LONG.max_new_tokens, String(stopped.message));
    assert.equal(await p.exited, EXIT.ok);
    assert.equal(findLogs(p, { msg: 'request failed', code: 'UNAVAILABLE' }, from).length, 3);
    assertNoClientCancel(p, from);
  });

  it('a third signal forces the stop: what runs or waits gets UNAVAILABLE at once, exit code EXIT.forcedStop', async () => {
    const p = await start(['--model', await randomTiny(), '--max-batch-rows', '3', '--shutdown-grace-ms', '600000']);
    const calls = Array.from({ length: 3 }, () => outcome(call(p.client, 'Detect', { image: { data: image }, options: LONG })));
    await admitted(p, 3, 'the three long requests to be admitted');
    const from = p.logs.length;
    p.child.kill('SIGTERM');
    await waitForLog(p, { msg: 'shutting down', reason: 'SIGTERM' }, { from });
    p.child.kill('SIGINT');
    await waitForLog(p, { msg: 'signal received again; the drain goes on', signal: 'SIGINT', remainingBeforeForcedStop: 1 }, { from });
    // Nothing is answered while the (ten-minute) drain goes on.
    assert.deepEqual(findLogs(p, { msg: 'request failed' }, from), []);
    p.child.kill('SIGTERM');
    const forcing = await waitForLog(p, { msg: 'signal received again; forcing the stop' }, { from });
    assert.equal(forcing.exitCode, EXIT.forcedStop);
    const forced = await waitForLog(p, { msg: 'forced stop: the requests left were answered UNAVAILABLE' }, { from });
    assert.deepEqual([forced.running, forced.queued], [1, 2]);
    const outcomes = await Promise.all(calls);
    for (const o of outcomes) {
      assert.equal(o.code, 'UNAVAILABLE', JSON.stringify(outcomes));
      assert.equal(o.details, SHUTTING_DOWN);
    }
    assert.equal(await p.exited, EXIT.forcedStop);
    assert.equal(findLogs(p, { msg: 'stopped' }, from)[0]?.forced, true);
    const stopped = findLogs(p, { msg: 'running request stopped in its batch' }, from);
    assert.equal(stopped.length, 1);
    assert.match(String(stopped[0].message), /^stopped for the server's shutdown; /);
    assertNoClientCancel(p, from);
  });
});
