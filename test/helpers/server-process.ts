/**
 * Runs `florence2 serve` as a child process on loopback (ports picked by the OS) and gives typed
 * gRPC clients for it: the Florence2 service and grpc.health.v1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { loadFlorence2Package, PROTO_LOADER_OPTIONS } from 'florence2-client/proto';
import type { Florence2Client } from 'florence2-client/generated/florence2/v1/Florence2';
import { waitFor } from './wait';

const CLI = resolve(__dirname, '../../src/cli/main.ts');

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  /** The HTTP/JSON port, or null when the server runs without `--http-port`. */
  httpPort: number | null;
  address: string;
  client: Florence2Client;
  health: grpc.Client & { Check: Function; Watch: Function };
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves when the server logged `serving` (all workers warm). */
  serving: Promise<void>;
  stop(): Promise<number | null>;
}

/** Starts a server; resolves once it listens (workers may still be warming up: await `serving`). */
export async function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'serve', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--metrics-host', '127.0.0.1', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderrText = '';
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let markServing: () => void = () => {};
  const serving = new Promise<void>((res) => (markServing = res));
  const listening = new Promise<{ port: number; metricsPort: number; httpPort: number | null }>((res, rej) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      stderrText += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const entry = JSON.parse(line);
          logs.push(entry);
          if (entry.msg === 'listening') res({ port: entry.port, metricsPort: entry.metricsPort, httpPort: entry.httpPort ?? null });
          if (entry.msg === 'serving') markServing();
        } catch {
          // not a log line (e.g. a native library warning)
        }
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    void exited.then((code) => rej(new Error(`server exited with ${code} before listening:\n${stderrText.slice(-4000)}`)));
  });
  const { port, metricsPort, httpPort } = await listening;
  const address = `127.0.0.1:${port}`;
  const pkg = grpc.loadPackageDefinition(loadFlorence2Package()) as unknown as {
    florence2: { v1: { Florence2: new (a: string, c: grpc.ChannelCredentials, o?: object) => Florence2Client } };
  };
  const client = new pkg.florence2.v1.Florence2(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.max_send_message_length': 64 << 20,
  });
  const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, PROTO_LOADER_OPTIONS)) as any;
  const health = new healthPkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  return {
    child,
    port,
    metricsPort,
    httpPort,
    address,
    client,
    health,
    logs,
    exited,
    serving,
    async stop() {
      client.close();
      health.close();
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Promise form of a unary call with an optional deadline (ms from now) and metadata.
 *
 * `serverDeadlineMs` sends a deadline that only the server enforces: the `grpc-timeout` header
 * without a client-side deadline. With `deadlineMs` the client also gives up at its deadline and
 * cancels the call, and whether the server sees that cancel or its own deadline first depends on
 * timing (a loaded server parses the header late, so its deadline is later than the client's);
 * tests of the server's deadline handling use `serverDeadlineMs` so the server's timer always wins.
 */
export function call<Req, Res>(
  client: object,
  method: string,
  request: Req,
  options: { deadlineMs?: number; serverDeadlineMs?: number; metadata?: Record<string, string> } = {},
): Promise<Res> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  if (options.serverDeadlineMs !== undefined) md.set('grpc-timeout', `${Math.ceil(options.serverDeadlineMs)}m`);
  const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  return new Promise((res, rej) => {
    (client as Record<string, Function>)[method](request, md, callOptions, (err: grpc.ServiceError | null, out: Res) =>
      err ? rej(err) : res(out),
    );
  });
}

/** Health Check status of a service name ('' = the whole server). */
export function healthStatus(p: ServerProcess, service = ''): Promise<string> {
  return new Promise((res, rej) =>
    p.health.Check({ service }, (err: grpc.ServiceError | null, out: { status: string }) => (err ? rej(err) : res(out.status))),
  );
}

/** Resolves once the Florence2 and health channels are connected (a first call then pays no connection setup). */
export async function channelsReady(p: ServerProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    [p.client as unknown as grpc.Client, p.health].map(
      (c) => new Promise<void>((res, rej) => c.waitForReady(deadline, (err?: Error) => (err ? rej(err) : res()))),
    ),
  );
}

/** The Prometheus text of the server's /metrics. */
export async function scrapeMetrics(p: ServerProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  return res.text();
}

/** The value of a sample line `name{labels} value` whose labels contain every given pair; null when there is none. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

/** Scrapes until the sample `name{labels}` satisfies `ok` (a missing sample counts as 0); resolves with its value. */
export async function waitForMetric(
  p: ServerProcess,
  name: string,
  labels: Record<string, string>,
  ok: (value: number) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<number> {
  let value = 0;
  await waitFor(
    async () => {
      value = metricSample(await scrapeMetrics(p), name, labels) ?? 0;
      return ok(value);
    },
    { what: `${what} (${name} ${JSON.stringify(labels)})`, timeoutMs, intervalMs: 20 },
  );
  return value;
}

/** A JSON log line whose fields equal the given values (a RegExp field must match the value as a string). */
export type LogMatch = Record<string, unknown>;

function logMatches(entry: Record<string, unknown>, match: LogMatch): boolean {
  return Object.entries(match).every(([k, want]) =>
    want instanceof RegExp ? typeof entry[k] === 'string' && want.test(entry[k]) : entry[k] === want,
  );
}

/** The log lines from index `from` on that match. */
export function findLogs(p: ServerProcess, match: LogMatch, from = 0): Record<string, unknown>[] {
  return p.logs.slice(from).filter((l) => logMatches(l, match));
}

/**
 * Waits for a log line from index `from` on (take `p.logs.length` before the action) that matches;
 * resolves with it. The server logs a request's outcome after recording it in the metrics, so a
 * request's log line also means its metrics are in.
 */
export function waitForLog(
  p: ServerProcess,
  match: LogMatch,
  options: { from?: number; what?: string; timeoutMs?: number } = {},
): Promise<Record<string, unknown>> {
  const what = options.what ?? `a server log line matching ${JSON.stringify(match, (_k, v) => (v instanceof RegExp ? String(v) : v))}`;
  return waitFor(() => findLogs(p, match, options.from)[0], { what, timeoutMs: options.timeoutMs });
}
