/**
 * A fleet on loopback: three `florence2 serve` processes on 127.0.0.1 (a tiny scripted model, one
 * worker each) with a short maximum connection age, behind clients that balance round-robin. It
 * shows what deploy/README.md claims for client-side balancing:
 *
 * - load spreads over every replica (per-replica request counts from each one's /metrics);
 * - a replica SIGTERMed under load drains what it holds while the others take the load, and no
 *   request fails (the client's retries allowed);
 * - a replica restarted on the same port gets load again within the maximum connection age, found
 *   the way a client of a headless Service finds it: by resolving the name again when an aged
 *   connection is closed;
 * - `florence2 annotate --server ipv4:...,...,...` spreads a 200-image job over the fleet, survives a
 *   replica killed with SIGKILL mid-job, and writes the same dataset as a run on a single server.
 *
 * Every wait is for an observable state (metrics, log lines, files, exits); the one time bound is
 * the maximum connection age, which is the point of that test, with a wide margin.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { Florence2Client, type Florence2Error } from 'florence2-client';
import { findLogs, scrapeMetrics, startServerProcess, type ServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';
import { waitFor } from '../helpers/wait';
import { snapshot, writeImage } from '../annotate/helpers';
import type { AnnotationSummary } from '../../src/annotate';

/** Short, so that the restart test waits seconds, not minutes; production uses minutes (deploy/base/configmap.yaml). */
const MAX_AGE_MS = 2000;
const ANNOTATE_CLI = resolve(__dirname, '../../src/cli/annotate.ts');

/** Requests answered OK in a scrape, over every task (the `florence2_requests_total{code="OK"}` series). */
function okIn(text: string): number {
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('florence2_requests_total{') && line.includes('code="OK"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Requests a replica answered OK. */
const okCount = async (p: ServerProcess): Promise<number> => okIn(await scrapeMetrics(p));

/** A gauge of cpu:0 (the replicas' only device) in a scrape. */
function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('device="cpu:0"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Requests a replica has taken: answered OK, running or waiting (one scrape). */
async function taken(p: ServerProcess): Promise<number> {
  const text = await scrapeMetrics(p);
  return okIn(text) + gauge(text, 'florence2_inflight_requests') + gauge(text, 'florence2_queued_requests');
}

/**
 * Stands in for the DNS name of a headless Service (grpc-js's resolver API): it answers with the
 * replicas that are ready, as the endpoints controller publishes them, and, like grpc-js's DNS
 * resolver, only when the channel asks (at start, and when a connection is not ready) and at most
 * every RESOLVE_INTERVAL_MS (grpc-js's DNS resolver: 30 s by default). Nothing polls: with every
 * connection up, a replica that becomes ready is found only once some connection closes.
 */
const RESOLVE_INTERVAL_MS = 250;
const published = new Set<number>();
let resolutions = 0;
class ReadyReplicasResolver implements grpc.experimental.Resolver {
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    _target: unknown,
    private readonly listener: grpc.experimental.ResolverListener,
  ) {}
  updateResolution(): void {
    // Never answered synchronously (grpc-js's contract); a request while one is pending joins it.
    this.timer ??= setTimeout(
      () => {
        this.timer = null;
        this.last = Date.now();
        resolutions++;
        const endpoints = [...published].map((port) => ({ addresses: [{ host: '127.0.0.1', port }] }));
        this.listener(grpc.experimental.statusOrFromValue(endpoints), {}, null, '');
      },
      Math.max(0, this.last + RESOLVE_INTERVAL_MS - Date.now()),
    );
  }
  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
  static getDefaultAuthority(target: { path: string }): string {
    return target.path;
  }
}
grpc.experimental.registerResolver('fleet-test', ReadyReplicasResolver);

interface Load {
  /** Resolves when the loops have sent `max` requests and have their answers. */
  done: Promise<void>;
  /** Ends the loops; resolves with the outcomes once every started request is answered. */
  stop(): Promise<{ ok: number; failed: Florence2Error[] }>;
}

/** `concurrency` request loops on `client` until stopped (at most `max` requests in all, so it always ends). */
function startLoad(client: Florence2Client, image: Buffer, concurrency: number, max = 2000): Load {
  let stopped = false;
  let started = 0;
  let ok = 0;
  const failed: Florence2Error[] = [];
  const loop = async () => {
    while (!stopped && started < max) {
      started++;
      await client.detect(image, { deadlineMs: 60_000 }).then(
        () => ok++,
        (e: Florence2Error) => failed.push(e),
      );
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop)).then(() => undefined);
  const load = {
    done,
    async stop() {
      stopped = true;
      await done;
      loads.delete(load);
      return { ok, failed };
    },
  };
  loads.add(load);
  return load;
}

/** Loads not yet stopped: a test that failed half-way leaves its load to `after`. */
const loads = new Set<Load>();

describe('deploy: a fleet of three replicas on loopback, balanced round-robin', function () {
  this.timeout(120_000);
  const replicas: Array<ServerProcess | null> = [null, null, null];
  const ports: number[] = [];
  let model: string;
  let image: Buffer;
  let work: string;
  /** One client over the "headless Service" (fleet-test:///): what an application in the cluster would hold. */
  let client: Florence2Client;

  const alive = (p: ServerProcess | null): p is ServerProcess => p !== null && p.child.exitCode === null && p.child.signalCode === null;
  const replica = (i: number): ServerProcess => {
    const p = replicas[i];
    assert.ok(p && alive(p), `replica ${i} is running`);
    return p;
  };

  /** Starts replica `i` (on its earlier port when it had one) and waits until it serves. */
  async function start(i: number): Promise<ServerProcess> {
    const p = await startServerProcess([
      '--model',
      model,
      '--devices',
      'cpu',
      // Three servers and the clients share the test machine's cores.
      '--intra-op-threads',
      '1',
      '--max-connection-age-ms',
      String(MAX_AGE_MS),
      // Each request's outcome is logged ("request done" is a debug line), so a drain can be read back.
      '--log-level',
      'debug',
      ...(ports[i] !== undefined ? ['--port', String(ports[i])] : []),
    ]);
    replicas[i] = p;
    ports[i] = p.port;
    await p.serving;
    return p;
  }

  before(async () => {
    model = await carTiny();
    image = await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 90, g: 120, b: 40 } } })
      .png()
      .toBuffer();
    work = mkdtempSync(join(tmpdir(), 'florence2-fleet-'));
    await Promise.all([0, 1, 2].map(start));
    for (const port of ports) published.add(port);
    client = new Florence2Client({ address: 'fleet-test:///florence2-server-headless', loadBalancing: 'round_robin' });
  });

  after(async () => {
    await Promise.all([...loads].map((l) => l.stop()));
    client?.close();
    await Promise.all(
      replicas.map(async (p) => {
        if (p && alive(p)) p.child.kill('SIGKILL');
        await p?.exited;
        p?.client.close();
        p?.health.close();
      }),
    );
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('spreads load over every replica, with no request failing', async () => {
    const before = await Promise.all(replicas.map((_, i) => okCount(replica(i))));
    const load = startLoad(client, image, 4, 45);
    await load.done;
    const { ok, failed } = await load.stop();
    assert.deepEqual(
      failed.map((e) => `${e.name}: ${e.message} after ${e.attempts} attempts`),
      [],
    );
    assert.equal(ok, 45);
    const served = (await Promise.all(replicas.map((_, i) => okCount(replica(i))))).map((n, i) => n - before[i]);
    assert.equal(
      served.reduce((a, b) => a + b, 0),
      45,
      `per replica: ${served.join(', ')}`,
    );
    // Round-robin: a third each while all are connected; a connection being replaced (max age) shifts a few.
    for (const n of served) assert.ok(n >= 7, `every replica served a sixth or more of the 45 (${served.join(', ')})`);
  });

  it('a replica SIGTERMed under load drains what it holds; the others take over and no request fails', async () => {
    const draining = replica(1);
    const others = [replica(0), replica(2)];
    const load = startLoad(client, image, 9);
    // Work waits on replica 1 behind what it runs, so the drain has something to finish.
    await waitFor(
      async () => {
        const text = await scrapeMetrics(draining);
        return gauge(text, 'florence2_inflight_requests') >= 1 && gauge(text, 'florence2_queued_requests') >= 1;
      },
      { what: 'replica 1 to run a batch with more waiting' },
    );
    const from = draining.logs.length;
    // The endpoints controller drops a terminating pod from the Service: resolving again no longer gives it.
    published.delete(ports[1]);
    draining.child.kill('SIGTERM');
    assert.equal(await draining.exited, 0, 'the drain ended by itself');
    const exitedAt = await Promise.all(others.map(okCount));
    // The others carry the load on their own for a while.
    await waitFor(async () => (await Promise.all(others.map(okCount))).every((n, i) => n >= exitedAt[i] + 5), {
      what: 'replicas 0 and 2 to serve 5 more requests each',
    });
    const { ok, failed } = await load.stop();
    assert.deepEqual(
      failed.map((e) => `${e.name}: ${e.message} after ${e.attempts} attempts`),
      [],
    );
    assert.ok(ok > 0);
    const shutdown = findLogs(draining, { msg: 'shutting down' }, from);
    assert.equal(shutdown.length, 1);
    const afterSignal = draining.logs.slice(draining.logs.indexOf(shutdown[0]));
    const drained = afterSignal.filter((l) => l.msg === 'request done').length;
    assert.ok(drained >= 1, 'requests held at SIGTERM were answered');
  });

  it('a replica restarted on the same port gets load again within the maximum connection age', async () => {
    // Replica 1 is down after the drain above; when this test runs alone, it is stopped here.
    published.delete(ports[1]);
    if (alive(replicas[1])) {
      replicas[1].child.kill('SIGTERM');
      assert.equal(await replicas[1].exited, 0);
    }
    const restarted = await start(1);
    const load = startLoad(client, image, 4);
    // Serving, yet unknown to the client: not published, and the client has no connection to it.
    assert.equal(await okCount(restarted), 0);
    // Ready: the endpoints controller publishes it. The client resolves again only when one of its
    // connections closes, which with every connection up happens when one reaches its maximum age.
    const resolvedBefore = resolutions;
    published.add(ports[1]);
    const t0 = Date.now();
    await waitFor(async () => (await taken(restarted)) >= 1, {
      what: 'the restarted replica to take a request',
      timeoutMs: 3 * MAX_AGE_MS + 10_000,
    });
    const foundAfterMs = Date.now() - t0;
    assert.ok(resolutions > resolvedBefore, 'found by resolving the name again');
    // An aged connection closes within the age and its 10% jitter; resolving, connecting and a
    // scrape take milliseconds, so 3 s of slack is wide even on a loaded machine. Without the
    // maximum age nothing would close a connection, and the replica would never be found.
    assert.ok(foundAfterMs < MAX_AGE_MS * 1.1 + 3000, `found ${foundAfterMs} ms after it was published`);
    // And it takes a share from then on.
    const now = await okCount(restarted);
    await waitFor(async () => (await okCount(restarted)) >= now + 3, { what: 'the restarted replica to serve 3 more requests' });
    const { failed } = await load.stop();
    assert.deepEqual(
      failed.map((e) => `${e.name}: ${e.message} after ${e.attempts} attempts`),
      [],
    );
  });

  it('florence2 annotate over the fleet: 200 images spread over every replica, one killed mid-job, the dataset a single server writes', async () => {
    for (let i = 0; i < 3; i++) if (!alive(replicas[i])) await start(i);
    const data = join(work, 'images');
    // Tiny images of a few sizes: COCO boxes follow the size, YOLO lines are relative.
    for (let i = 0; i < 200; i++) await writeImage(join(data, `img${String(i).padStart(3, '0')}.png`), 16 + (i % 7), 12 + (i % 5));
    const annotate = (out: string, server: string) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          ANNOTATE_CLI,
          data,
          '-o',
          out,
          '--server',
          server,
          '--format',
          'yolo,coco',
          '--concurrency',
          '6',
          '--json',
          '--no-progress',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const done = new Promise<{ code: number | null; summary: AnnotationSummary; stderr: string }>((res) =>
        child.on('exit', (code) =>
          res({ code, summary: code === 0 ? (JSON.parse(stdout) as AnnotationSummary) : ({} as AnnotationSummary), stderr }),
        ),
      );
      return { child, done };
    };
    const recorded = (out: string) =>
      existsSync(join(out, '.annotate', 'records')) ? readdirSync(join(out, '.annotate', 'records')).length : 0;

    // The reference: the same job on one server.
    const single = await annotate(join(work, 'single'), replica(0).address).done;
    assert.equal(single.code, 0, single.stderr);
    assert.equal(single.summary.annotated, 200);

    // The fleet, as an address list (the CLI's client picks round_robin for it); replica 2 is killed
    // once it has served part of the job and the job is far from done.
    const fleetOut = join(work, 'fleet');
    const victim = replica(2);
    const before = await Promise.all(replicas.map((_, i) => okCount(replica(i))));
    const job = annotate(fleetOut, `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(',')}`);
    await waitFor(async () => (await okCount(victim)) >= before[2] + 10 || job.child.exitCode !== null, {
      what: 'replica 2 to serve 10 requests of the job',
    });
    const servedByVictim = (await okCount(victim)) - before[2];
    const recordedAtKill = recorded(fleetOut);
    victim.child.kill('SIGKILL');
    await victim.exited;
    const fleet = await job.done;
    assert.equal(fleet.code, 0, fleet.stderr);
    assert.ok(recordedAtKill < 150, `killed mid-job (${recordedAtKill} of 200 images were done)`);
    assert.equal(fleet.summary.annotated, 200, 'every image annotated: requests the killed replica dropped were retried on the others');
    assert.equal(fleet.summary.failed, 0);
    const served = [(await okCount(replica(0))) - before[0], (await okCount(replica(1))) - before[1], servedByVictim];
    for (const n of served) assert.ok(n >= 10, `every replica served part of the job (${served.join(', ')})`);

    // The same dataset, byte for byte: labels, COCO, classes, copies; data.yaml names its own folder.
    const a = await snapshot(join(work, 'single'));
    const b = await snapshot(fleetOut);
    const files = (m: Map<string, Buffer>) => [...m.keys()].filter((k) => !k.startsWith('.annotate/'));
    assert.deepEqual(files(b), files(a));
    for (const k of files(a)) {
      if (k === 'data.yaml')
        assert.equal(b.get(k)!.toString().replace(fleetOut, '<out>'), a.get(k)!.toString().replace(join(work, 'single'), '<out>'));
      else assert.ok(b.get(k)!.equals(a.get(k)!), `${k} is the same`);
    }
  });
});
