/**
 * One file from the Hub: its metadata (size, sha256 of LFS files, etag, commit) from the first answer
 * of its resolve URL, and a resumable, verified download of its blob into a `.florence2.incomplete`
 * file renamed on success. Our own code: @huggingface/hub's downloads neither resume nor verify.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { ChecksumError, HubError, HubHttpError, NetworkError } from './errors';
import { TransportError, header, isRetryable, open as httpOpen, permanentCause, redact } from './http';
import { INCOMPLETE } from './cache';

/** Where and how to reach the Hub. */
export interface HubClient {
  /** e.g. `https://huggingface.co` (no trailing slash). */
  endpoint: string;
  token?: string;
  /** Socket idle timeout. */
  timeoutMs: number;
  /** Retries after a connection error or 5xx/429 that made no progress (bounded). */
  retries: number;
  /** First backoff delay; doubles per retry, capped at 30 s, with jitter. */
  retryDelayMs: number;
}

/** What the Hub says about a file before it is downloaded. */
export interface FileMeta {
  /** Repository path. */
  path: string;
  /** Bytes, when stated (X-Linked-Size for LFS files, Content-Length otherwise). */
  size: number | null;
  /** sha256 hex of the content for LFS files (X-Linked-Etag); null for small git files, whose ETag is a git sha1. */
  sha256: string | null;
  /** X-Repo-Commit, when sent. */
  commit: string | null;
  /**
   * The blob name in the hub cache, as huggingface_hub picks it: X-Linked-Etag (the sha256 of an LFS
   * file), else ETag (the git blob sha1), quotes and `W/` removed; null when neither was sent.
   */
  etag: string | null;
}

/** Context of a request for error messages. */
export interface Target {
  repo: string;
  revision: string;
  file?: string;
}

/** The resolve URL of a file. */
export function resolveUrl(client: HubClient, repo: string, revision: string, path: string): string {
  const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');
  return `${client.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${enc(path)}`;
}

/** A readable error for an HTTP failure; 401/403 mention HF_TOKEN, 404 names the repository or file. */
export function httpError(status: number, headers: IncomingHttpHeaders, url: string, target: Target, client: HubClient): HubHttpError {
  const code = header(headers, 'x-error-code');
  const where = `${target.repo}${target.revision === 'main' ? '' : ` at revision ${target.revision}`}`;
  const shown = redact(url);
  let msg: string;
  if (code === 'RepoNotFound' || (status === 404 && target.file === undefined && code !== 'RevisionNotFound')) {
    msg = `repository ${target.repo} not found at ${client.endpoint} (HTTP ${status})${client.token ? '' : '; if it is private or gated, set HF_TOKEN to an access token that can read it'}`;
  } else if (code === 'RevisionNotFound') {
    msg = `revision ${target.revision} of ${target.repo} not found (HTTP ${status})`;
  } else if (status === 401) {
    msg = client.token
      ? `the token in HF_TOKEN was rejected for ${where} (HTTP 401): check that it is valid and can read this repository`
      : `${where} needs authentication (HTTP 401): set HF_TOKEN to a Hugging Face access token with read access`;
  } else if (status === 403) {
    msg = client.token
      ? `access to ${where} denied (HTTP 403): the token in HF_TOKEN may lack access; for a gated model, accept its terms on the Hub with that account`
      : `access to ${where} denied (HTTP 403): set HF_TOKEN to an access token with access (gated models need their terms accepted)`;
  } else if (status === 404) {
    msg = `${target.file} not found in ${where} (HTTP 404 from ${shown})`;
  } else {
    msg = `${target.file ?? target.repo}: HTTP ${status} from ${shown}`;
  }
  return new HubHttpError(msg, status, shown, status === 429 || status === 503 ? retryAfterMs(headers) : null);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The longest Retry-After waited for; a longer one fails the pull with the Hub's answer. */
const MAX_RETRY_AFTER_MS = 60_000;

/** Retry-After in ms (seconds or an HTTP date); null when absent or unreadable. */
function retryAfterMs(headers: IncomingHttpHeaders): number | null {
  const v = header(headers, 'retry-after')?.trim();
  if (v === undefined || v === '') return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/**
 * Runs `fn`, retrying retryable failures (connection errors, 5xx, 429) up to `client.retries` times
 * with exponential backoff and jitter. `progressed()` tells whether the failed attempt moved a
 * download forward; the backoff then restarts from the first delay (the link works, resume soon).
 */
export async function withRetries<T>(
  client: HubClient,
  what: string,
  fn: () => Promise<T>,
  progressed: () => boolean = () => false,
): Promise<T> {
  let backoff = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const attempts = `${attempt + 1} attempt${attempt === 0 ? '' : 's'}`;
      if (err instanceof TransportError && permanentCause(err.code) !== null)
        throw new NetworkError(`${what}: ${err.message} (not retried: ${attempts})`);
      if (!isRetryable(err)) throw err;
      // a 429's Retry-After is honoured when it is within reach; a longer wait is the caller's to choose
      const retryAfter = err instanceof HubHttpError ? err.retryAfterMs : null;
      if (attempt >= client.retries || (retryAfter !== null && retryAfter > MAX_RETRY_AFTER_MS)) {
        if (err instanceof TransportError)
          throw new NetworkError(`${what}: ${err.message} (gave up after ${attempts}; run the pull again to resume)`);
        throw err;
      }
      backoff = progressed() ? 0 : backoff + 1;
      const delay = Math.min(client.retryDelayMs * 2 ** Math.max(0, backoff - 1), 30_000);
      await sleep(Math.max(delay * (0.75 + Math.random() * 0.5), retryAfter ?? 0));
    }
  }
}

/** An ETag without `W/` and quotes; null when absent or unusable as a file name. */
function normalizeEtag(etag: string | undefined): string | null {
  const v = etag?.replace(/^W\//, '').replace(/"/g, '').trim();
  return v !== undefined && /^[A-Za-z0-9._-]{1,200}$/.test(v) && !v.startsWith('.') ? v : null;
}

/** sha256 hex from an ETag value, when it is one (`"<64 hex>"`, possibly weak). */
function sha256FromEtag(etag: string | undefined): string | null {
  const v = normalizeEtag(etag)?.toLowerCase();
  return v !== undefined && /^[0-9a-f]{64}$/.test(v) ? v : null;
}

function intHeader(headers: IncomingHttpHeaders, name: string): number | null {
  const v = header(headers, name);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
}

/**
 * Size, sha256 and commit of a file: a HEAD of its resolve URL with redirects not followed. An LFS
 * file answers 302 with X-Linked-Size and X-Linked-Etag; a small file answers 200. Redirects without
 * those headers (a renamed repository) are followed.
 */
export async function fileMeta(client: HubClient, repo: string, revision: string, path: string): Promise<FileMeta> {
  const target = { repo, revision, file: path };
  const tokenOrigin = new URL(client.endpoint).origin;
  return withRetries(client, path, async () => {
    let url = resolveUrl(client, repo, revision, path);
    for (let hop = 0; hop < 10; hop++) {
      const { res } = await httpOpen(url, { method: 'HEAD', token: client.token, tokenOrigin, timeoutMs: client.timeoutMs });
      res.resume();
      const status = res.statusCode ?? 0;
      const h = res.headers;
      const commit = header(h, 'x-repo-commit') ?? null;
      const linkedSize = intHeader(h, 'x-linked-size');
      const linkedEtag = header(h, 'x-linked-etag');
      if (status >= 200 && status < 400 && (linkedSize !== null || linkedEtag !== undefined)) {
        const sha256 = sha256FromEtag(linkedEtag);
        return { path, size: linkedSize ?? intHeader(h, 'content-length'), sha256, commit, etag: sha256 ?? normalizeEtag(linkedEtag) };
      }
      if (status >= 200 && status < 300)
        return { path, size: intHeader(h, 'content-length'), sha256: null, commit, etag: normalizeEtag(header(h, 'etag')) };
      const location = header(h, 'location');
      if (status >= 300 && status < 400 && location) {
        url = new URL(location, url).href;
        continue;
      }
      throw httpError(status, h, url, target, client);
    }
    throw new HubError(`${path}: too many redirects`);
  });
}

/** sha256 of a file's first `bytes` bytes (to continue hashing a resumed download). */
async function hashPrefix(file: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes === 0) return hash;
  for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1 })) hash.update(chunk as Buffer);
  return hash;
}

async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

/** Result of a verified download. */
export interface Downloaded {
  size: number;
  sha256: string;
  /** Whether the Hub stated a sha256 that was checked. */
  verified: boolean;
}

/**
 * Downloads `meta.path` to `dest` (a blob). Bytes go to `dest + INCOMPLETE` — not huggingface_hub's
 * `.incomplete`, which its process may be appending to under an OS lock we cannot take; an existing one is continued
 * with `Range: bytes=N-` (a 200 answer means the server ignored the range: start over). The size is
 * always checked, the sha256 when the Hub stated one; on a mismatch the incomplete file is deleted
 * and a {@link ChecksumError} thrown. `onBytes(n)` reports the bytes of this file on disk so far.
 * A complete `dest` from an earlier run is re-verified and kept.
 */
export async function downloadFile(
  client: HubClient,
  repo: string,
  revision: string,
  meta: FileMeta,
  dest: string,
  onBytes: (n: number) => void,
): Promise<Downloaded> {
  const incomplete = `${dest}${INCOMPLETE}`;
  await mkdir(dirname(dest), { recursive: true });

  const verify = async (file: string, size: number, sha256: string): Promise<Downloaded> => {
    if (meta.size !== null && size !== meta.size) {
      await rm(file, { force: true });
      throw new ChecksumError(meta.path, 'size', `${meta.size} bytes`, `${size} bytes`);
    }
    if (meta.sha256 !== null && sha256 !== meta.sha256) {
      await rm(file, { force: true });
      throw new ChecksumError(meta.path, 'sha256', meta.sha256, sha256);
    }
    return { size, sha256, verified: meta.sha256 !== null };
  };

  const done = await sizeOf(dest);
  if (done !== null) {
    // Finished in an interrupted run: trust nothing, check it again.
    const hash = (await hashPrefix(dest, done)).digest('hex');
    onBytes(done);
    return verify(dest, done, hash);
  }

  const tokenOrigin = new URL(client.endpoint).origin;
  const url = resolveUrl(client, repo, revision, meta.path);
  let progressed = false;
  const attempt = async (): Promise<Downloaded> => {
    progressed = false;
    let start = (await sizeOf(incomplete)) ?? 0;
    if (meta.size !== null && start > meta.size) {
      await rm(incomplete, { force: true });
      start = 0;
    }
    onBytes(start);
    if (meta.size !== null && start === meta.size && start > 0) {
      const hash = (await hashPrefix(incomplete, start)).digest('hex');
      const result = await verify(incomplete, start, hash);
      await rename(incomplete, dest);
      return result;
    }
    const headers: Record<string, string> = start > 0 ? { range: `bytes=${start}-` } : {};
    const { res, url: finalUrl } = await httpOpen(url, {
      headers,
      token: client.token,
      tokenOrigin,
      follow: true,
      timeoutMs: client.timeoutMs,
    });
    const status = res.statusCode ?? 0;
    if (status === 416) {
      // Our partial is not a prefix the server can continue: start over.
      res.resume();
      await rm(incomplete, { force: true });
      throw new TransportError(`${meta.path}: range ${start}- not satisfiable, restarting`, redact(finalUrl));
    }
    if (status !== 200 && status !== 206) {
      res.resume();
      throw httpError(status, res.headers, finalUrl, { repo, revision, file: meta.path }, client);
    }
    if (status === 206) {
      const m = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
      if (m === null || Number(m[1]) !== start) {
        res.destroy();
        await rm(incomplete, { force: true });
        throw new TransportError(
          `${meta.path}: server answered range ${m?.[1] ?? '?'}- to a request for ${start}-, restarting`,
          redact(finalUrl),
        );
      }
    } else if (start > 0) {
      start = 0; // 200 to a range request: the whole file follows
      onBytes(0);
    }
    const length = intHeader(res.headers, 'content-length');
    const expected = meta.size ?? (length !== null ? start + length : null);
    const hash = await hashPrefix(incomplete, start);
    const fh = await open(incomplete, start === 0 ? 'w' : 'a');
    let written = start;
    try {
      await new Promise<void>((resolve, reject) => {
        // Chunks are taken as 'data' events (not by async iteration, which drops what is buffered when
        // the connection breaks) and written in order, so after a cut the file holds every byte that
        // arrived and the next attempt's Range starts exactly there.
        let chain = Promise.resolve();
        let queued = 0;
        let failed = false;
        const fail = (err: Error) => {
          if (failed) return;
          failed = true;
          res.destroy();
          reject(err);
        };
        res.on('data', (chunk: Buffer) => {
          queued += chunk.length;
          if (queued > 8 * 1024 * 1024) res.pause(); // the disk is slower than the network: hold it off
          chain = chain.then(async () => {
            if (failed) return;
            await fh.write(chunk);
            hash.update(chunk);
            written += chunk.length;
            queued -= chunk.length;
            progressed = true;
            onBytes(written);
            if (res.isPaused() && queued < 1024 * 1024) res.resume();
          });
          chain.catch(fail);
        });
        res.once('end', () => chain.then(() => resolve(), fail));
        const broken = (err?: Error) =>
          chain.then(
            () =>
              fail(
                new TransportError(
                  `${meta.path}: connection lost after ${written} of ${expected ?? '?'} bytes${err ? ` (${err.message})` : ''}`,
                  redact(finalUrl),
                ),
              ),
            fail,
          );
        res.once('error', broken);
        res.once('close', () => {
          if (!res.complete) void broken();
        });
      });
    } finally {
      await fh.close();
    }
    if (expected !== null && written < expected) {
      throw new TransportError(`${meta.path}: connection closed after ${written} of ${expected} bytes`, redact(finalUrl));
    }
    const result = await verify(incomplete, written, hash.digest('hex'));
    await rename(incomplete, dest);
    return result;
  };
  return withRetries(client, meta.path, attempt, () => progressed);
}
