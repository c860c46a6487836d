/**
 * Runs `florence2 serve` as a child process on loopback (ports picked by the OS) and gives typed
 * gRPC clients for it: the Florence2 service and grpc.health.v1.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { loadFlorence2Package, PROTO_LOADER_OPTIONS } from '../../src/server/proto';
import type { Florence2Client } from '../../src/generated/florence2/v1/Florence2';

const CLI = resolve(__dirname, '../../src/cli/main.ts');

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
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
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--metrics-host', '127.0.0.1', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderrText = '';
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let markServing: () => void = () => {};
  const serving = new Promise<void>((res) => (markServing = res));
  const listening = new Promise<{ port: number; metricsPort: number }>((res, rej) => {
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
          if (entry.msg === 'listening') res({ port: entry.port, metricsPort: entry.metricsPort });
          if (entry.msg === 'serving') markServing();
        } catch {
          // not a log line (e.g. a native library warning)
        }
      }
    };
    child.stderr!.on('data', onData);
    child.stdout!.on('data', onData);
    exited.then((code) => rej(new Error(`server exited with ${code} before listening:\n${stderrText.slice(-4000)}`)));
  });
  const { port, metricsPort } = await listening;
  const address = `127.0.0.1:${port}`;
  const pkg = grpc.loadPackageDefinition(loadFlorence2Package()) as unknown as { florence2: { v1: { Florence2: new (a: string, c: grpc.ChannelCredentials, o?: object) => Florence2Client } } };
  const client = new pkg.florence2.v1.Florence2(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
  const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, PROTO_LOADER_OPTIONS)) as any;
  const health = new healthPkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  return {
    child,
    port,
    metricsPort,
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

/** Promise form of a unary call with an optional deadline (ms from now) and metadata. */
export function call<Req, Res>(
  client: object,
  method: string,
  request: Req,
  options: { deadlineMs?: number; metadata?: Record<string, string> } = {},
): Promise<Res> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  return new Promise((res, rej) => {
    (client as Record<string, Function>)[method](request, md, callOptions, (err: grpc.ServiceError | null, out: Res) => (err ? rej(err) : res(out)));
  });
}

/** Health Check status of a service name ('' = the whole server). */
export function healthStatus(p: ServerProcess, service = ''): Promise<string> {
  return new Promise((res, rej) => p.health.Check({ service }, (err: grpc.ServiceError | null, out: { status: string }) => (err ? rej(err) : res(out.status))));
}
