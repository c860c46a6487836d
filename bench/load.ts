/**
 * `npm run bench:load [-- --clients N] [--requests M] [--devices LIST] [--time-limit S] [--deadline-ms MS]`
 *
 * A bounded load test on loopback: starts `florence2 serve` as a child process on 127.0.0.1 with a
 * tiny car-scripted synthetic model (built once under .cache/bench-models/), then N concurrent
 * clients send M requests in all, mixed over Detect, Caption, Ocr, Run and the bidirectional Stream
 * (shared streams, several requests in flight on each, matched by request_id).
 *
 * Every request carries its own image size, so every answer can be checked against its own request:
 * image_width/height in the meta, and for detection the car box scaled to that size. Outcomes:
 *   ok          answered, and the answer is the one expected for that request
 *   errors      answered with a gRPC status (or a Stream error outcome), counted per code
 *   mismatched  answered with another request's answer (wrong size, box, text, task or request_id),
 *               or a Stream response for a request_id that is not in flight (counted as well)
 *   lost        sent but never answered (the stream ended or the time limit came first)
 *   not sent    still waiting for a client when the time limit came
 * The time limit (default 120 s) covers the whole run, setup included: when it passes, the test
 * cancels what is in flight, stops the server and reports. Progress goes to stderr, the report
 * (markdown tables) to stdout.
 *
 * Exit status: 0 when every request was sent and answered and none was lost or mismatched (error
 * statuses such as RESOURCE_EXHAUSTED beyond the queue bounds are reported, not failures); 1 when
 * anything was lost or mismatched, the time limit stopped the run, nothing succeeded, or the server
 * failed; 2 on bad options.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { type ServerProcess, startServerProcess } from '../test/helpers/server-process';
import { CAR_SCRIPT, carBox, loadTestModel } from './load-model';

const started = performance.now();
const log = (line: string) => process.stderr.write(`[load ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

// ---------------------------------------------------------------- options

class UsageError extends Error {}

interface Options {
  clients: number;
  requests: number;
  devices: string;
  timeLimitS: number;
  deadlineMs: number;
}

const USAGE =
  'npm run bench:load -- [--clients N (8)] [--requests M (400)] [--devices LIST (cpu:0,cpu:1)] [--time-limit S (120)] [--deadline-ms MS (30000)]\n';

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '8' },
      requests: { type: 'string', default: '400' },
      devices: { type: 'string', default: 'cpu:0,cpu:1' },
      'time-limit': { type: 'string', default: '120' },
      'deadline-ms': { type: 'string', default: '30000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const positive = (flag: string, v: string, integer = true) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
      throw new UsageError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
    return n;
  };
  const devices = values.devices.trim();
  if (devices === '') throw new UsageError('--devices must name at least one device, e.g. cpu:0,cpu:1');
  return {
    clients: positive('clients', values.clients),
    requests: positive('requests', values.requests),
    devices,
    timeLimitS: positive('time-limit', values['time-limit'], false),
    deadlineMs: positive('deadline-ms', values['deadline-ms']),
  };
}

// ---------------------------------------------------------------- requests and checks

type Rpc = 'Detect' | 'Caption' | 'Ocr' | 'Run' | 'Stream';
type Task = 'detect' | 'caption' | 'ocr';
const RPCS: Rpc[] = ['Detect', 'Caption', 'Ocr', 'Run', 'Stream'];
const TASKS: Task[] = ['detect', 'caption', 'ocr'];

interface LoadRequest {
  index: number;
  rpc: Rpc;
  /** The task: fixed by the typed RPCs, chosen in the oneof for Run and Stream. */
  task: Task;
  width: number;
  height: number;
  image: Buffer;
  /** Stream request_id. */
  id: string;
}

type Status = 'ok' | 'error' | 'mismatched' | 'lost' | 'unsent';

interface Outcome {
  status: Status;
  latencyMs: number;
  /** gRPC status name for errors. */
  code?: string;
  /** Why the answer was not this request's. */
  why?: string;
  device?: string;
}

/**
 * A distinct image size per request index: 800 widths x a height that moves with every wrap, unique
 * for the first 160000 requests (both sides stay within 200..999 x 150..749).
 */
function imageSize(i: number): { width: number; height: number } {
  return { width: 200 + (i % 800), height: 150 + ((Math.floor(i / 800) * 37 + i * 13) % 600) };
}

function planRequest(i: number): Omit<LoadRequest, 'image'> {
  const rpc = RPCS[i % RPCS.length];
  const round = Math.floor(i / RPCS.length);
  const task: Task =
    rpc === 'Detect'
      ? 'detect'
      : rpc === 'Caption'
        ? 'caption'
        : rpc === 'Ocr'
          ? 'ocr'
          : TASKS[(round + (rpc === 'Stream' ? 1 : 0)) % TASKS.length];
  return { index: i, rpc, task, ...imageSize(i), id: `req-${i}` };
}

async function makeImage(i: number, width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: (i * 53) % 256, g: (i * 97) % 256, b: (i * 29) % 256 } } })
    .png()
    .toBuffer();
}

/** The request message of the task (the typed RPC's request, or the RunRequest oneof's member). */
function taskMessage(req: LoadRequest): object {
  const image = { data: req.image };
  if (req.task === 'detect') return { image, kind: 'DETECT_KIND_OBJECTS' };
  if (req.task === 'caption') return { image, detail: 'CAPTION_DETAIL_BRIEF' };
  return { image, with_regions: false };
}

interface Meta {
  image_width: number;
  image_height: number;
  device: string;
}
interface TaskResponse {
  boxes?: { x1: number; y1: number; x2: number; y2: number; label: string }[];
  text?: string;
  meta?: Meta | null;
}
interface RunResponse {
  result?: string;
  detect?: TaskResponse | null;
  caption?: TaskResponse | null;
  ocr?: TaskResponse | null;
}

/** Null when `res` is the answer expected for `req`, else why not. */
function mismatch(req: LoadRequest, res: TaskResponse | null | undefined): string | null {
  if (!res) return `no ${req.task} result`;
  const m = res.meta;
  if (!m || m.image_width !== req.width || m.image_height !== req.height)
    return `image ${m?.image_width}x${m?.image_height}, sent ${req.width}x${req.height}`;
  if (req.task === 'detect') {
    const boxes = res.boxes ?? [];
    if (boxes.length !== 1 || boxes[0].label !== 'car') return `boxes ${JSON.stringify(boxes)}`;
    const got = [boxes[0].x1, boxes[0].y1, boxes[0].x2, boxes[0].y2];
    const want = carBox(req.width, req.height);
    if (got.some((v, k) => Math.abs(v - want[k]) > 1e-3))
      return `box ${got.map((v) => v.toFixed(3)).join(',')}, expected ${want.map((v) => v.toFixed(3)).join(',')}`;
  } else if (res.text !== CAR_SCRIPT) {
    return `text ${JSON.stringify(res.text)}`;
  }
  return null;
}

function runMismatch(req: LoadRequest, res: RunResponse | null | undefined): string | null {
  if (!res || res.result !== req.task) return `Run result ${res?.result}, expected ${req.task}`;
  return mismatch(req, res[req.task]);
}

// ---------------------------------------------------------------- the load

/** One request's life: settles once, with its outcome. */
class Pending {
  private settled = false;
  readonly sentAt = performance.now();
  cancel: () => void = () => {};
  constructor(
    readonly req: LoadRequest,
    private readonly record: (req: LoadRequest, o: Outcome) => void,
    private readonly onSettle: () => void,
  ) {}
  private guard: NodeJS.Timeout | null = null;
  /** Counts the request as lost when nothing settled it within `ms` (a unary call has its own deadline before). */
  guardAfter(ms: number, why: string): void {
    this.guard = setTimeout(() => {
      this.settle({ status: 'lost', why });
      this.cancel();
    }, ms);
  }
  settle(o: Omit<Outcome, 'latencyMs'>): void {
    if (this.settled) return;
    this.settled = true;
    if (this.guard) clearTimeout(this.guard);
    this.record(this.req, { ...o, latencyMs: performance.now() - this.sentAt });
    this.onSettle();
  }
}

interface StreamResponse {
  request_id: string;
  outcome?: string;
  result?: RunResponse | null;
  error?: { code: number; message: string } | null;
}

/** A bidirectional Stream shared by several clients; responses are matched by request_id. */
class StreamLane {
  private call: grpc.ClientDuplexStream<object, StreamResponse> | null = null;
  private readonly pending = new Map<string, Pending>();
  /** Requests given up on (counted lost): a late answer for one is not a mismatch. */
  private readonly forgotten = new Set<string>();

  constructor(
    private readonly server: ServerProcess,
    private readonly onUnexpected: (why: string) => void,
  ) {}

  private open(): grpc.ClientDuplexStream<object, StreamResponse> {
    const call = (this.server.client as unknown as { Stream(): grpc.ClientDuplexStream<object, StreamResponse> }).Stream();
    const mine = this.pending;
    call.on('data', (m: StreamResponse) => {
      const p = mine.get(m.request_id);
      if (!p && this.forgotten.delete(m.request_id)) {
        log(`late Stream answer for ${m.request_id} (already counted lost)`);
        return;
      }
      if (!p) {
        this.onUnexpected(`Stream response for request_id ${JSON.stringify(m.request_id)}, which is not in flight`);
        return;
      }
      mine.delete(m.request_id);
      if (m.outcome === 'error') {
        p.settle({ status: 'error', code: grpc.status[m.error?.code ?? 2] ?? `code ${m.error?.code}`, why: m.error?.message });
      } else {
        const why = runMismatch(p.req, m.result);
        p.settle(why === null ? { status: 'ok', device: m.result?.[p.req.task]?.meta?.device } : { status: 'mismatched', why });
      }
    });
    const fail = (outcome: Omit<Outcome, 'latencyMs'>) => {
      if (this.call === call) this.call = null;
      for (const [id, p] of mine) {
        mine.delete(id);
        p.settle(outcome);
      }
    };
    call.on('error', (e: grpc.ServiceError) =>
      fail({ status: 'error', code: `${grpc.status[e.code] ?? e.code} (stream)`, why: e.details }),
    );
    call.on('end', () => fail({ status: 'lost', why: 'the stream ended without an answer' }));
    return call;
  }

  send(p: Pending): void {
    if (this.call === null) this.call = this.open();
    const call = this.call;
    this.pending.set(p.req.id, p);
    // Giving up on one request forgets it; the shared stream goes on for the others.
    p.cancel = () => {
      if (this.pending.delete(p.req.id)) this.forgotten.add(p.req.id);
    };
    call.write({ request_id: p.req.id, request: { [p.req.task]: taskMessage(p.req) } });
  }

  /** Cancels the stream (after the time limit). */
  cancel(): void {
    this.call?.cancel();
    this.call = null;
  }

  /** Half-closes the stream and waits (bounded) for the server to finish it. */
  async close(waitMs: number): Promise<void> {
    const call = this.call;
    if (!call) return;
    const ended = new Promise<void>((res) => {
      call.once('status', () => res());
      call.once('error', () => res());
    });
    call.end();
    await Promise.race([ended, sleep(waitMs)]);
  }
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms).unref());

interface LoadResult {
  outcomes: Map<number, Outcome>;
  requests: LoadRequest[];
  unexpected: string[];
  wallMs: number;
  stoppedByLimit: boolean;
}

async function runLoad(server: ServerProcess, requests: LoadRequest[], opts: Options, deadlineAt: number): Promise<LoadResult> {
  const outcomes = new Map<number, Outcome>();
  const unexpected: string[] = [];
  const inflight = new Set<Pending>();
  const record = (req: LoadRequest, o: Outcome) => outcomes.set(req.index, o);
  const lanes = Array.from(
    { length: Math.max(1, Math.ceil(opts.clients / 4)) },
    () => new StreamLane(server, (why) => unexpected.push(why)),
  );

  let next = 0;
  let stopped = false;
  let wake: () => void = () => {};
  const stoppedSignal = new Promise<void>((res) => (wake = res));
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...inflight]) {
      p.settle({ status: 'lost', why: 'no answer before the time limit' });
      p.cancel();
    }
    wake();
  };
  const limitTimer = setTimeout(
    () => {
      log(`time limit of ${opts.timeLimitS} s reached: cancelling ${inflight.size} in flight, ${requests.length - next} not sent`);
      stop();
    },
    Math.max(0, deadlineAt - performance.now()),
  );

  const progress = setInterval(() => log(`${outcomes.size}/${requests.length} answered, ${inflight.size} in flight`), 5000);
  const t0 = performance.now();

  async function client(c: number): Promise<void> {
    const lane = lanes[c % lanes.length];
    while (!stopped && next < requests.length) {
      const req = requests[next++];
      let settled: () => void = () => {};
      const answered = new Promise<void>((res) => (settled = res));
      const p = new Pending(req, record, () => {
        inflight.delete(p);
        settled();
      });
      inflight.add(p);
      if (req.rpc === 'Stream') {
        // Stream requests have no deadline of their own: wait as long as a unary call would.
        p.guardAfter(opts.deadlineMs, `no Stream answer for ${req.id} within ${opts.deadlineMs} ms`);
        lane.send(p);
      } else {
        const method = req.rpc;
        const message = method === 'Run' ? { [req.task]: taskMessage(req) } : taskMessage(req);
        type UnaryMethod = (
          m: object,
          md: grpc.Metadata,
          o: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res: TaskResponse & RunResponse) => void,
        ) => grpc.ClientUnaryCall;
        const fn = (server.client as unknown as Record<string, UnaryMethod>)[method].bind(server.client);
        const call = fn(
          message,
          new grpc.Metadata(),
          { deadline: Date.now() + opts.deadlineMs },
          (err: grpc.ServiceError | null, res: TaskResponse & RunResponse) => {
            if (err) {
              p.settle({ status: 'error', code: grpc.status[err.code] ?? String(err.code), why: err.details });
              return;
            }
            const why = method === 'Run' ? runMismatch(req, res) : mismatch(req, res);
            const device = method === 'Run' ? res[req.task]?.meta?.device : res.meta?.device;
            p.settle(why === null ? { status: 'ok', device } : { status: 'mismatched', why });
          },
        );
        p.cancel = () => call.cancel();
        p.guardAfter(
          opts.deadlineMs + 5000,
          `no answer and no status ${opts.deadlineMs + 5000} ms after sending (deadline ${opts.deadlineMs} ms)`,
        );
      }
      await Promise.race([answered, stoppedSignal]);
    }
  }

  await Promise.all(Array.from({ length: opts.clients }, (_, c) => client(c)));
  const wallMs = performance.now() - t0;
  const stoppedByLimit = stopped;
  clearTimeout(limitTimer);
  clearInterval(progress);
  if (stoppedByLimit) lanes.forEach((l) => l.cancel());
  else await Promise.all(lanes.map((l) => l.close(5000)));
  for (const req of requests) if (!outcomes.has(req.index)) outcomes.set(req.index, { status: 'unsent', latencyMs: 0 });
  return { outcomes, requests, unexpected, wallMs, stoppedByLimit };
}

// ---------------------------------------------------------------- report

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');

interface Counts {
  sent: number;
  ok: number;
  errors: number;
  lost: number;
  mismatched: number;
  unsent: number;
  latencies: number[];
}

function count(list: Outcome[]): Counts {
  const c: Counts = { sent: 0, ok: 0, errors: 0, lost: 0, mismatched: 0, unsent: 0, latencies: [] };
  for (const o of list) {
    if (o.status !== 'unsent') c.sent++;
    if (o.status === 'ok') {
      c.ok++;
      c.latencies.push(o.latencyMs);
    } else if (o.status === 'error') c.errors++;
    else if (o.status === 'lost') c.lost++;
    else if (o.status === 'mismatched') c.mismatched++;
    else c.unsent++;
  }
  c.latencies.sort((a, b) => a - b);
  return c;
}

function report(r: LoadResult, opts: Options): { lost: number; mismatched: number; ok: number } {
  const all = count([...r.outcomes.values()]);
  const mismatched = all.mismatched + r.unexpected.length;
  const wallS = r.wallMs / 1000;
  const out: string[] = [];
  out.push(`## Load test: ${opts.requests} requests, ${opts.clients} clients, devices ${opts.devices}`);
  out.push('');
  out.push(
    `Loopback (127.0.0.1), tiny car-scripted synthetic model, Node ${process.versions.node}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}.`,
  );
  out.push(
    `Latency: send to checked answer of the OK requests; throughput: OK answers per second of wall time (first send to last answer).`,
  );
  out.push('');
  out.push(
    '| requests | sent | concurrency | ok | errors | lost | mismatched | p50 ms | p95 ms | p99 ms | max ms | throughput req/s | wall s |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const L = all.latencies;
  out.push(
    `| ${opts.requests} | ${all.sent} | ${opts.clients} | ${all.ok} | ${all.errors} | ${all.lost} | ${mismatched} | ${ms(percentile(L, 50))} | ${ms(percentile(L, 95))} | ${ms(percentile(L, 99))} | ${ms(L[L.length - 1] ?? NaN)} | ${(all.ok / wallS).toFixed(1)} | ${wallS.toFixed(2)} |`,
  );
  out.push('');
  out.push('| RPC | task mix | requests | ok | errors | lost | mismatched | p50 ms | p95 ms |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const rpc of RPCS) {
    const reqs = r.requests.filter((q) => q.rpc === rpc);
    const c = count(reqs.map((q) => r.outcomes.get(q.index)!));
    const tasks = [...new Set(reqs.map((q) => q.task))].join(', ');
    out.push(
      `| ${rpc} | ${tasks} | ${reqs.length} | ${c.ok} | ${c.errors} | ${c.lost} | ${c.mismatched} | ${ms(percentile(c.latencies, 50))} | ${ms(percentile(c.latencies, 95))} |`,
    );
  }
  const devices = new Map<string, number>();
  const codes = new Map<string, number>();
  for (const o of r.outcomes.values()) {
    if (o.status === 'ok' && o.device) devices.set(o.device, (devices.get(o.device) ?? 0) + 1);
    if (o.status === 'error') codes.set(o.code ?? '?', (codes.get(o.code ?? '?') ?? 0) + 1);
  }
  out.push('');
  out.push(
    `OK answers per device: ${
      [...devices]
        .sort()
        .map(([d, n]) => `${d} ${n}`)
        .join(', ') || 'none'
    }.`,
  );
  out.push(`Errors by status code: ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}.`);
  if (all.unsent > 0) out.push(`Not sent (time limit): ${all.unsent}.`);
  if (r.stoppedByLimit) out.push(`Stopped by the time limit of ${opts.timeLimitS} s.`);
  const examples: string[] = [];
  for (const q of r.requests) {
    const o = r.outcomes.get(q.index)!;
    if ((o.status === 'mismatched' || o.status === 'lost') && examples.length < 5)
      examples.push(`- ${q.id} (${q.rpc}/${q.task}, ${q.width}x${q.height}): ${o.status}: ${o.why}`);
  }
  for (const why of r.unexpected.slice(0, 5)) examples.push(`- ${why}`);
  if (examples.length > 0) out.push('', 'First problems:', ...examples);
  process.stdout.write(out.join('\n') + '\n');
  return { lost: all.lost, mismatched, ok: all.ok };
}

// ---------------------------------------------------------------- main

/** Resolves with `p`, or rejects when the run's deadline passes first. */
function beforeDeadline<T>(p: Promise<T>, deadlineAt: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const limit = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`time limit reached while ${what}`)), Math.max(0, deadlineAt - performance.now()));
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

async function stopServer(server: ServerProcess): Promise<number | null> {
  const code = await Promise.race([server.stop(), sleep(15000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    log('server did not exit 15 s after SIGTERM: SIGKILL');
    server.child.kill('SIGKILL');
    return Promise.race([server.exited, sleep(5000).then(() => null)]);
  }
  return code;
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions();
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const deadlineAt = started + opts.timeLimitS * 1000;
  let server: ServerProcess | null = null;
  try {
    const modelDir = await beforeDeadline(loadTestModel(log), deadlineAt, 'building the model');
    log(`server: starting on 127.0.0.1 with --devices ${opts.devices}`);
    const serverStarting = startServerProcess(['--model', modelDir, '--devices', opts.devices]);
    serverStarting.then((s) => (server = s)).catch(() => {});
    const plans = Array.from({ length: opts.requests }, (_, i) => planRequest(i));
    const [requests] = await beforeDeadline(
      Promise.all([Promise.all(plans.map(async (p) => ({ ...p, image: await makeImage(p.index, p.width, p.height) }))), serverStarting]),
      deadlineAt,
      'preparing images and starting the server',
    );
    const s = await serverStarting;
    const exitedEarly = s.exited.then((code) => Promise.reject(new Error(`server exited with ${code} before serving`)));
    exitedEarly.catch(() => {});
    await beforeDeadline(Promise.race([s.serving, exitedEarly]), deadlineAt, 'waiting for the server to warm up');
    log(`server: serving on ${s.address}; ${requests.length} requests (${requests.length} image sizes), ${opts.clients} clients`);
    s.child.once('exit', (code) => {
      if (server) log(`server exited with ${code} during the load`);
    });

    const result = await runLoad(s, requests, opts, deadlineAt);
    log(`load done in ${(result.wallMs / 1000).toFixed(2)} s; stopping the server`);
    server = null;
    const code = await stopServer(s);
    if (code !== 0) log(`server exit code ${code}`);
    const { lost, mismatched, ok } = report(result, opts);
    const failed = lost > 0 || mismatched > 0 || result.stoppedByLimit || ok === 0;
    if (failed)
      log(
        `FAILED: ${lost} lost, ${mismatched} mismatched${result.stoppedByLimit ? ', stopped by the time limit' : ''}${ok === 0 ? ', nothing succeeded' : ''}`,
      );
    return failed ? 1 : 0;
  } catch (e) {
    log(`FAILED: ${(e as Error).message}`);
    process.stdout.write(`## Load test did not run: ${(e as Error).message}\n`);
    return 1;
  } finally {
    const s = server as ServerProcess | null;
    if (s) await stopServer(s);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
    // Nothing should keep the process alive; make sure it ends even if a handle lingers.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
