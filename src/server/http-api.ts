/**
 * The HTTP/JSON front end: `POST /v1/<Rpc>` for every unary RPC, with the proto3 JSON mapping
 * (json.ts), and `GET /openapi.json`. It calls the same service functions as gRPC (service.ts), so
 * validation, the scheduler, deadlines and metrics are shared; what the gRPC guard does per call
 * (tokens, per-client bounds, the memory budget) is done here per request, with the same objects.
 *
 * Bodies are bounded: a declared length over the limit is refused with 413 before any of it is read
 * (and before `100 Continue` is sent), a chunked body as soon as it passes the limit. The body
 * reserves its size in the memory budget before it is read.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { InternalError, InvalidArgumentError, ResourceExhaustedError, ServiceError, UnauthenticatedError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { Metrics } from '../metrics/registry';
import type { TokenAuth } from './auth';
import type { ByteBudget, Ticket } from './budget';
import type { ClientLimits } from './client-limits';
import { bindCallContext, type RefusalReason } from './guard';
import type { JsonCodec } from './json';
import { UNARY_RPCS, type UnaryMethod, type UnaryRpc } from './service';
import type { TlsFiles } from './tls';

/** gRPC status → HTTP status, as Google's API gateways and grpc-gateway map them. */
export const HTTP_STATUS: Record<grpc.status, number> = {
  [grpc.status.OK]: 200,
  [grpc.status.CANCELLED]: 499,
  [grpc.status.UNKNOWN]: 500,
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.DEADLINE_EXCEEDED]: 504,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.FAILED_PRECONDITION]: 400,
  [grpc.status.ABORTED]: 409,
  [grpc.status.OUT_OF_RANGE]: 400,
  [grpc.status.UNIMPLEMENTED]: 501,
  [grpc.status.INTERNAL]: 500,
  [grpc.status.UNAVAILABLE]: 503,
  [grpc.status.DATA_LOSS]: 500,
  [grpc.status.UNAUTHENTICATED]: 401,
};

/** An answer the HTTP layer gives itself (no gRPC code has the HTTP status it needs). */
class HttpRefusal extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface HttpApiOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  maxBodyBytes: number;
  /** The gRPC message size limit: the binary form of a JSON request must fit it too. */
  maxMessageBytes: number;
  methods: Record<UnaryRpc, UnaryMethod>;
  /** The guarded gRPC service definition: its deserializers scan requests, its serializers write responses. */
  definition: grpc.ServiceDefinition;
  codec: JsonCodec;
  /** The document served at /openapi.json. */
  openapi: Buffer;
  budget: ByteBudget;
  clientLimits: ClientLimits;
  auth: () => TokenAuth | null;
  /** TLS (and client certificates) as on the gRPC port, or null for plaintext. */
  tls: TlsFiles | null;
  /** A request whose body has not arrived this long after its headers gets 408 (slow senders hold budget). */
  receiveTimeoutMs: number;
  servicePath: string;
  metrics: Metrics;
  logger: Logger;
  /** Hears every request refused before the service saw it, as the gRPC guard's refusals are. */
  onRefused?: (what: { path: string; client: string; reason: RefusalReason; error: ServiceError }) => void;
}

export interface HttpApi {
  port: number;
  /** Stops accepting connections; answers in flight go out, then every connection is closed. */
  close(graceMs?: number): Promise<void>;
}

/** Request headers that describe the HTTP exchange itself and are not call metadata. */
const NOT_METADATA = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'upgrade',
  'expect',
  'content-length',
  'content-type',
  'content-encoding',
  'accept',
  'accept-encoding',
  'user-agent',
  'grpc-timeout',
]);

/** The request's headers as gRPC metadata (what handlers and the token check read). */
function metadataOf(headers: http.IncomingHttpHeaders): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(headers)) {
    if (NOT_METADATA.has(key) || key.endsWith('-bin') || !/^[0-9a-z_.-]+$/.test(key) || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      try {
        md.add(key, v);
      } catch {
        // a value gRPC metadata cannot carry (non-ASCII): not for us
      }
    }
  }
  return md;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** The `grpc-timeout` header (gRPC's format, as grpc-gateway reads it: `500m`, `2S`) as a deadline. */
function deadlineOf(headers: http.IncomingHttpHeaders, arrivedEpoch: number): number | undefined {
  const raw = headers['grpc-timeout'];
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? raw.join(',') : raw;
  const m = /^(\d{1,8})([HMSmun])$/.exec(text.trim());
  if (!m)
    throw new InvalidArgumentError(
      'grpc-timeout',
      '`grpc-timeout` must be up to 8 digits and a unit (H, M, S, m, u, n), e.g. `2S` or `500m`. Given: ' + JSON.stringify(text),
    );
  return arrivedEpoch + Number(m[1]) * TIMEOUT_UNIT_MS[m[2]];
}

function certificateName(req: http.IncomingMessage): string | null {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.authorized || !socket.getPeerCertificate) return null;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? `cn:${cn}` : null;
}

/** Reads the body, refusing it (413) as soon as it passes `limit`. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('aborted', () => reject(new HttpRefusal(499, 'CANCELLED', 'the client closed the connection')));
  });
}

/** How much of a refused body is still read and dropped, and for how long, while its answer goes out. */
const DISCARD_BYTES = 16 << 20;
const DISCARD_MS = 2000;

/**
 * After a 413, a lingering close: the answer goes out, the write side is shut (FIN), and the rest
 * of the body is read and dropped for a moment, up to {@link DISCARD_BYTES} or {@link DISCARD_MS}.
 * Closing a socket that still has unread data resets it, and the client, still sending, would then
 * lose the answer sitting in its receive buffer. Node's server would close at once for a
 * `connection: close` answer (`socket.destroySoon()` when the response finishes, else `end()`), so
 * this socket is given no `destroySoon` and gets the half-close instead.
 */
function discardRest(req: http.IncomingMessage, res: http.ServerResponse): void {
  let dropped = 0;
  const socket = req.socket;
  Object.defineProperty(socket, 'destroySoon', { value: undefined, configurable: true, writable: true });
  req.removeAllListeners('data');
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_BYTES) socket.destroy();
  });
  req.resume();
  res.once('finish', () => {
    const timer = setTimeout(() => socket.destroy(), DISCARD_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

const tooLarge = (limit: number) =>
  new HttpRefusal(413, 'RESOURCE_EXHAUSTED', `the request body is over the server's limit of ${limit} bytes (--http-max-body-bytes)`, {
    connection: 'close',
  });

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const { logger, metrics } = options;
  const rpcs = new Set<string>(UNARY_RPCS);

  const send = (res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const sendError = (res: http.ServerResponse, err: unknown, requestPath: string) => {
    if (err instanceof HttpRefusal) {
      if (err.httpStatus === 413) discardRest(res.req, res);
      send(res, err.httpStatus, JSON.stringify({ error: { code: err.httpStatus, status: err.status, message: err.message } }), err.headers);
      return;
    }
    let e: ServiceError;
    if (err instanceof ServiceError) e = err;
    else {
      logger.error('unexpected error in the HTTP/JSON API', { path: requestPath, err });
      e = new InternalError('internal error; the server log has the cause');
    }
    const httpStatus = HTTP_STATUS[e.code] ?? 500;
    const retryAfterMs = e instanceof ResourceExhaustedError ? e.retryAfterMs : undefined;
    const headers: Record<string, string> = {};
    if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    if (e.code === grpc.status.UNAUTHENTICATED) headers['www-authenticate'] = 'Bearer';
    const error = {
      code: httpStatus,
      status: grpc.status[e.code],
      message: e.message,
      ...(e instanceof InvalidArgumentError ? { field: e.field } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
    send(res, httpStatus, JSON.stringify({ error }), headers);
  };

  /** Tokens, else the client certificate, else the peer address: who the request counts against. */
  const identify = (req: http.IncomingMessage, metadata: grpc.Metadata, path: string) => {
    let client = req.socket.remoteAddress ?? 'unknown';
    let authenticated = false;
    const auth = options.auth();
    const byCert = certificateName(req);
    if (auth) {
      const name = auth.identify(metadata);
      if (name === null) {
        const error = new UnauthenticatedError('this server needs `authorization: Bearer <token>` with a known token on every call');
        options.onRefused?.({ path, client, reason: 'unauthenticated', error });
        throw error;
      }
      client = name;
      authenticated = true;
    } else if (byCert) {
      client = byCert;
      authenticated = true;
    }
    metadata.remove('authorization');
    return { client, authenticated };
  };

  async function handleCall(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rpc: UnaryRpc,
    expectContinue: boolean,
    release: Array<() => void>,
  ) {
    const arrivedEpoch = Date.now();
    const path = `${options.servicePath}/${rpc}`;
    if (req.method !== 'POST') throw new HttpRefusal(405, 'UNIMPLEMENTED', `${req.url} takes POST with a JSON body`, { allow: 'POST' });
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json')
      throw new HttpRefusal(
        415,
        'INVALID_ARGUMENT',
        `the body must be application/json (proto3 JSON); got ${type === '' ? 'no content-type' : type}. With curl: -H 'content-type: application/json'`,
      );
    const clientDeadline = deadlineOf(req.headers, arrivedEpoch);
    const metadata = metadataOf(req.headers);
    const { client, authenticated } = identify(req, metadata, path);
    try {
      release.push(options.clientLimits.admit(client));
    } catch (err) {
      options.onRefused?.({ path, client, reason: 'client_limit', error: err as ServiceError });
      throw err;
    }
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > options.maxBodyBytes) {
      metrics.recordRejectedMessage('size');
      throw tooLarge(options.maxBodyBytes);
    }
    const reserve = declared ?? options.maxBodyBytes;
    const ticket: Ticket | null = options.budget.tryTake(reserve, client);
    if (ticket === null) {
      const error = new ResourceExhaustedError(
        `the server holds its request memory budget of ${options.budget.total} bytes; this ${reserve}-byte request cannot be held now, retry`,
        { retryAfterMs: 200 },
      );
      options.onRefused?.({ path, client, reason: 'memory_budget', error });
      throw error;
    }
    release.push(() => ticket.release());
    if (expectContinue) res.writeContinue();
    let binary: Uint8Array;
    try {
      binary = options.codec.decodeRequest(rpc, (await readBody(req, options.maxBodyBytes)).toString('utf8'));
    } catch (err) {
      if (err instanceof HttpRefusal && err.httpStatus === 413) metrics.recordRejectedMessage('size');
      if (err instanceof InvalidArgumentError) {
        metrics.recordRejectedMessage('malformed');
        metrics.recordRequest('unknown', 'INVALID_ARGUMENT', 0);
      }
      throw err;
    }
    if (binary.length > options.maxMessageBytes) {
      metrics.recordRejectedMessage('size');
      throw new HttpRefusal(
        413,
        'RESOURCE_EXHAUSTED',
        `the request is ${binary.length} bytes as a message, over the server's limit of ${options.maxMessageBytes} (--max-message-bytes)`,
      );
    }
    const method = options.definition[rpc];
    const request: unknown = method.requestDeserialize(Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength));
    ticket.resize(binary.length);
    bindCallContext(metadata, { client, authenticated, releaseMessage: () => {} });
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const result = await options.methods[rpc]({
      request,
      metadata,
      peer: `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`,
      path,
      clientDeadline,
      signal: ac.signal,
      arrivedEpoch,
    });
    send(res, 200, options.codec.encodeResponse(rpc, method.responseSerialize(result)));
  }

  const handle = (req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean) => {
    const url = req.url ?? '/';
    const route = url.split('?')[0];
    const release: Array<() => void> = [];
    const done = () => {
      for (const r of release.splice(0)) r();
    };
    res.once('close', done);
    const answer = async () => {
      if (route === '/openapi.json') {
        if (req.method !== 'GET' && req.method !== 'HEAD')
          throw new HttpRefusal(405, 'UNIMPLEMENTED', '/openapi.json takes GET', { allow: 'GET, HEAD' });
        identify(req, metadataOf(req.headers), route);
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': options.openapi.length });
        res.end(req.method === 'HEAD' ? undefined : options.openapi);
        return;
      }
      const m = /^\/v1\/([A-Za-z]+)$/.exec(route);
      if (m && rpcs.has(m[1])) return handleCall(req, res, m[1] as UnaryRpc, expectContinue, release);
      if (m && m[1] === 'Stream')
        throw new HttpRefusal(404, 'NOT_FOUND', 'Stream is a bidirectional gRPC stream; the HTTP/JSON API has the unary RPCs', {
          connection: 'close',
        });
      throw new HttpRefusal(
        404,
        'NOT_FOUND',
        `no such route: ${route}; the API is POST /v1/<Rpc> (${UNARY_RPCS.join(', ')}) and GET /openapi.json`,
        {
          connection: 'close',
        },
      );
    };
    answer().then(
      () => done(),
      (err: unknown) => {
        sendError(res, err, route);
        done();
      },
    );
  };

  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => handle(req, res, false);
  const tls = options.tls;
  const server: http.Server = tls
    ? https.createServer({ ...tls.secureContextOptions(), requestCert: tls.mutual, rejectUnauthorized: tls.mutual }, listener)
    : http.createServer(listener);
  // Refuse before `100 Continue`: a client that waits for it never sends a body we would not read.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => handle(req, res, true));
  server.requestTimeout = options.receiveTimeoutMs;
  server.headersTimeout = Math.min(options.receiveTimeoutMs, 60_000);
  if (tls && server instanceof https.Server) {
    const secure = server;
    // Reloaded material applies to new connections, as on the gRPC port.
    const update = () => secure.setSecureContext(tls.secureContextOptions());
    tls.addIdentityCertificateListener(update);
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : options.port);
    });
  });
  server.on('error', (err) => logger.error('HTTP/JSON server error', { err }));

  let closing: Promise<void> | null = null;
  const close = (graceMs = 2000): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    }));
  return { port, close };
}
