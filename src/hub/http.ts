/**
 * A small HTTP(S) client over node:http/https for the Hub: manual redirects (so the headers of the
 * first answer — the LFS size and sha256 — can be read, and the token kept off other hosts), an idle
 * timeout, and error classification for retries.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { HubError, HubHttpError } from './errors';

/** One answer of a redirect chain. */
export interface Hop {
  url: string;
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** The final answer (body unread) and every answer before it. */
export interface Opened {
  res: http.IncomingMessage;
  /** URL of the final answer. */
  url: string;
  /** Answers in order; the last is `res`'s. */
  hops: Hop[];
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer` only to `tokenOrigin`, never to a host a redirect leads to. */
  token?: string;
  /** Origin (`scheme://host:port`) the token belongs to. */
  tokenOrigin?: string;
  /** Follow 3xx answers (up to {@link MAX_REDIRECTS}); otherwise return the first answer. */
  follow?: boolean;
  /** Socket idle timeout. */
  timeoutMs?: number;
}

const MAX_REDIRECTS = 10;
const USER_AGENT = 'florence2-server (node; +hub client)';

/** Connection-level failure; retried unless {@link permanentCause} says waiting cannot help. */
export class TransportError extends HubError {
  constructor(
    message: string,
    readonly url: string,
    /** The system or TLS error code (`ECONNRESET`, `ENOTFOUND`, `CERT_HAS_EXPIRED`, ...), when there was one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * Why a connection failure will not go away by retrying, or null when it may (resets, refusals,
 * timeouts, cut bodies). Not retried:
 * - `ENOTFOUND`: the resolver answered that the host does not exist (a typo in HF_ENDPOINT, or a
 *   name only a VPN or proxy resolves);
 * - `EAI_AGAIN`: no resolver answered — in practice a machine or container without a network, which
 *   outlasts the retry window; failing at once is cheap since the next pull resumes;
 * - certificate and TLS errors: the same certificate comes back on every attempt.
 */
export function permanentCause(code: string | undefined): string | null {
  if (code === 'ENOTFOUND') return 'the host name does not resolve (check HF_ENDPOINT, or use offline mode with a cached model)';
  if (code === 'EAI_AGAIN') return 'no DNS server answered (is the network up? check HF_ENDPOINT, or use offline mode with a cached model)';
  if (code !== undefined && (/CERT|^ERR_TLS_|^ERR_SSL_/.test(code) || code === 'EPROTO'))
    return 'the TLS connection was refused (certificate or protocol error; for a mirror with its own CA set NODE_EXTRA_CA_CERTS)';
  return null;
}

/** A single request; resolves when the answer's headers arrive. */
function once(url: URL, options: RequestOptions): Promise<http.IncomingMessage> {
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...(options.headers ?? {}) };
  if (options.token && options.tokenOrigin === url.origin) headers.authorization = `Bearer ${options.token}`;
  const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
  if (mod === null) return Promise.reject(new HubError(`unsupported URL scheme in ${url.href}`));
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: options.method ?? 'GET', headers });
    req.setTimeout(options.timeoutMs ?? 30_000, () =>
      req.destroy(Object.assign(new Error(`no data for ${options.timeoutMs ?? 30_000} ms`), { code: 'ETIMEDOUT' })),
    );
    req.once('error', (err: NodeJS.ErrnoException) => {
      // getaddrinfo's message is just `getaddrinfo ENOTFOUND host`: say what it means
      const cause = permanentCause(err.code);
      const detail = `${err.code !== undefined && !err.message.includes(err.code) ? `${err.code} ` : ''}${err.message}`;
      reject(
        new TransportError(
          `${options.method ?? 'GET'} ${redact(url)}: ${detail}${cause === null ? '' : `: ${cause}`}`,
          redact(url),
          err.code,
        ),
      );
    });
    req.once('response', resolve);
    req.end();
  });
}

/** A URL for messages: no query string (CDN URLs carry signatures) and no credentials. */
export function redact(url: URL | string): string {
  const u = new URL(String(url));
  u.username = '';
  u.password = '';
  u.search = '';
  return u.href;
}

/** Sends a request, following redirects when asked; the caller reads or discards `res`. */
export async function open(url: string, options: RequestOptions = {}): Promise<Opened> {
  let current = new URL(url);
  const hops: Hop[] = [];
  for (let i = 0; ; i++) {
    const res = await once(current, options);
    const status = res.statusCode ?? 0;
    hops.push({ url: current.href, status, headers: res.headers });
    const location = res.headers.location;
    if (!options.follow || status < 300 || status >= 400 || status === 304 || !location) return { res, url: current.href, hops };
    res.resume();
    if (i >= MAX_REDIRECTS) throw new HubError(`too many redirects from ${redact(url)}`);
    // Relative locations resolve against the current URL (the Hub redirects renamed repos that way).
    current = new URL(location, current);
  }
}

/** Reads a whole (small) body as text. */
export async function readText(res: http.IncomingMessage, limit = 16 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) {
      res.destroy();
      throw new HubError(`answer larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One header value (first of a repeated header). */
export function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Whether an error is worth retrying: connection failures that may pass, 5xx and 429. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof TransportError) return permanentCause(err.code) === null;
  if (err instanceof HubHttpError) return err.status >= 500 || err.status === 429;
  return false;
}
