/**
 * A scripted in-process Florence2 gRPC server for client tests that need failures on demand
 * (UNAVAILABLE N times, a stream that breaks, a call that never answers) or TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadFlorence2Package } from 'florence2-client/proto';
import type { ProtoGrpcType } from 'florence2-client/generated/florence2';
import type { Florence2Handlers } from 'florence2-client/generated/florence2/v1/Florence2';

export interface FakeServer {
  server: grpc.Server;
  port: number;
  address: string;
  stop(): Promise<void>;
}

/** Starts a server on 127.0.0.1 with the given handlers (missing methods answer UNIMPLEMENTED). */
export async function startFakeServer(
  handlers: Partial<Florence2Handlers>,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<FakeServer> {
  const pkg = grpc.loadPackageDefinition(loadFlorence2Package()) as unknown as ProtoGrpcType;
  const server = new grpc.Server();
  server.addService(pkg.florence2.v1.Florence2.service, handlers as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? rej(err) : res(p))));
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((res) => server.tryShutdown(() => res())).then(() => server.forceShutdown()),
  };
}

/** A status error as a handler passes it to its callback. */
export function statusError(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = await startFakeServer({});
  await s.stop();
  return s.port;
}

export interface TestCerts {
  dir: string;
  cert: Buffer;
  key: Buffer;
  certPath: string;
  cleanup(): void;
}

/** A self-signed certificate for localhost / 127.0.0.1 made with openssl; null when openssl is not available. */
export function makeCerts(): TestCerts | null {
  const dir = mkdtempSync(join(tmpdir(), 'florence2-client-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return {
    dir,
    cert: readFileSync(join(dir, 'cert.pem')),
    key: readFileSync(join(dir, 'key.pem')),
    certPath: join(dir, 'cert.pem'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A minimal DetectResponse with one box. */
export const oneBox = (label = 'thing') => ({
  boxes: [{ x1: 1, y1: 2, x2: 30, y2: 40, label, score: 0.5 }],
  meta: { image_width: 64, image_height: 48, request_id: 'fake' },
});
