/**
 * A loopback HTTP server that answers like the Hugging Face Hub for repositories built from local
 * folders: the model API (`/api/models/{repo}[/revision/{rev}]`), `resolve` URLs (LFS files — `.onnx`
 * and `tokenizer.json` — answer 302 to a separate CDN server with X-Linked-Size, X-Linked-Etag and
 * X-Repo-Commit; small files answer 200 with a git-sha1 ETag), HTTP Range, and faults to inject:
 * a cut connection, wrong bytes, a required token, ignored ranges, 404s, 5xx and 429 answers.
 * Every request is logged for assertions.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** A repository the fake serves: every file under `dir`, at one commit. */
export interface FakeRepo {
  /** `owner/name`. */
  id: string;
  dir: string;
  /** Commit sha (40 hex); default derived from the id. */
  commit?: string;
}

/** Faults, changeable between requests (`hub.faults.x = ...`). */
export interface Faults {
  /** Close the connection after `bytes` body bytes of a download of `file`, `times` times (default 1). */
  cutAfter?: { file: string; bytes: number; times?: number };
  /** Serve `file` with one byte changed (headers still state the true size and sha256). */
  corrupt?: { file: string };
  /** Answer 200 with the whole file to range requests. */
  ignoreRange?: boolean;
  /** Files listed by the API whose resolve URL answers 404. */
  notFound?: string[];
  /** Answer 503 to downloads of `file`, `times` times. */
  unavailable?: { file: string; times: number };
  /** Answer 429 with `Retry-After: <retryAfter seconds>` to downloads of `file`, `times` times. */
  tooMany?: { file: string; times: number; retryAfter: number };
}

/** One logged request. */
export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  /** Path and query. */
  url: string;
  /** Repository path of the file concerned, when there is one. */
  file?: string;
  range?: string;
  authorization?: string;
  status: number;
  /** When it arrived (Date.now()). */
  at: number;
}

interface FileEntry {
  repo: FakeRepo & { commit: string };
  path: string;
  data: Buffer;
  sha256: string;
  gitSha1: string;
  lfs: boolean;
}

export interface FakeHubOptions {
  repos: FakeRepo[];
  /** When set, hub requests need `Authorization: Bearer <token>` (CDN URLs are signed and need none). */
  token?: string;
  /** Host the CDN server binds; default 127.0.0.2 (another host than the hub's 127.0.0.1), else 127.0.0.1. */
  cdnHost?: string;
}

/** Whether the fake stores a file in LFS (as the real repositories do for these). */
export const isLfs = (path: string) => path.endsWith('.onnx') || path === 'tokenizer.json';

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) =>
      relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
        .split(sep)
        .join('/'),
    )
    .sort();
}

async function listen(server: http.Server, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return `http://${host}:${a.port}`;
}

export class FakeHub {
  /** Requests in arrival order. */
  readonly log: LoggedRequest[] = [];
  faults: Faults = {};
  /** HF_ENDPOINT for clients. */
  endpoint = '';
  /** Origin of the CDN server. */
  cdnOrigin = '';
  private readonly files = new Map<string, FileEntry>(); // `${repo}\0${path}`
  private readonly bySha = new Map<string, FileEntry>();
  private readonly repos = new Map<string, FakeRepo & { commit: string }>();
  private readonly hub = http.createServer((req, res) => this.onHub(req, res));
  private readonly cdn = http.createServer((req, res) => this.onCdn(req, res));

  private constructor(private readonly options: FakeHubOptions) {
    for (const r of options.repos) {
      const repo = { ...r, commit: r.commit ?? createHash('sha1').update(`commit:${r.id}`).digest('hex') };
      this.repos.set(r.id, repo);
      for (const path of listFiles(r.dir)) {
        const data = readFileSync(join(r.dir, path));
        const entry: FileEntry = {
          repo,
          path,
          data,
          sha256: createHash('sha256').update(data).digest('hex'),
          gitSha1: createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex'),
          lfs: isLfs(path),
        };
        this.files.set(`${r.id}\0${path}`, entry);
        if (entry.lfs) this.bySha.set(entry.sha256, entry);
      }
    }
  }

  /** Starts the hub (127.0.0.1) and CDN servers on free ports. */
  static async start(options: FakeHubOptions): Promise<FakeHub> {
    const hub = new FakeHub(options);
    hub.endpoint = await listen(hub.hub, '127.0.0.1');
    try {
      hub.cdnOrigin = await listen(hub.cdn, options.cdnHost ?? '127.0.0.2');
    } catch {
      hub.cdnOrigin = await listen(hub.cdn, '127.0.0.1');
    }
    return hub;
  }

  /** The commit sha of a repository. */
  commitOf(id: string): string {
    return this.repos.get(id)!.commit;
  }

  /** Size and sha256 of a served file. */
  fileInfo(id: string, path: string): { size: number; sha256: string } {
    const f = this.files.get(`${id}\0${path}`)!;
    return { size: f.data.length, sha256: f.sha256 };
  }

  /** Logged requests for a file (downloads and metadata). */
  requestsFor(file: string, filter: Partial<Pick<LoggedRequest, 'server' | 'method'>> = {}): LoggedRequest[] {
    return this.log.filter(
      (r) =>
        r.file === file &&
        (filter.server === undefined || r.server === filter.server) &&
        (filter.method === undefined || r.method === filter.method),
    );
  }

  async close(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  private record(server: 'hub' | 'cdn', req: http.IncomingMessage, status: number, file?: string): void {
    this.log.push({
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '',
      file,
      range: req.headers.range,
      authorization: req.headers.authorization,
      status,
      at: Date.now(),
    });
  }

  private error(
    server: 'hub' | 'cdn',
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    code: string | null,
    message: string,
    file?: string,
  ): void {
    this.record(server, req, status, file);
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (code) headers['x-error-code'] = code;
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ error: message }));
  }

  private onHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint);
    const path = decodeURIComponent(url.pathname);
    if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
      return this.error('hub', req, res, 401, null, 'Invalid credentials in Authorization header');
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+?)(?:\/revision\/(.+))?$/.exec(path);
    if (api !== null) {
      const repo = this.repos.get(api[1]);
      if (repo === undefined) return this.error('hub', req, res, 401, 'RepoNotFound', 'Repository not found');
      const rev = api[2] ?? 'main';
      if (rev !== 'main' && rev !== repo.commit) return this.error('hub', req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const siblings = [...this.files.values()].filter((f) => f.repo === repo).map((f) => ({ rfilename: f.path }));
      this.record('hub', req, 200);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ _id: 'x', id: repo.id, modelId: repo.id, sha: repo.commit, private: false, siblings }));
      return;
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m === null) return this.error('hub', req, res, 404, null, 'Not found');
    const repo = this.repos.get(m[1]);
    if (repo === undefined) return this.error('hub', req, res, 401, 'RepoNotFound', 'Repository not found');
    if (m[2] !== 'main' && m[2] !== repo.commit) return this.error('hub', req, res, 404, 'RevisionNotFound', `Invalid rev id: ${m[2]}`);
    const file = this.files.get(`${repo.id}\0${m[3]}`);
    if (file === undefined || this.faults.notFound?.includes(m[3]))
      return this.error('hub', req, res, 404, 'EntryNotFound', `${m[3]} does not exist on "${m[2]}"`, m[3]);
    if (file.lfs) {
      // Like the Hub: the first answer states size and sha256; the bytes come from a signed CDN URL.
      const location = `${this.cdnOrigin}/cdn/${file.sha256}?file=${encodeURIComponent(file.path)}&X-Signature=fake`;
      this.record('hub', req, 302, file.path);
      res.writeHead(302, {
        location,
        'x-linked-size': String(file.data.length),
        'x-linked-etag': `"${file.sha256}"`,
        etag: `"${file.sha256}"`,
        'x-repo-commit': repo.commit,
        'content-type': 'text/plain',
      });
      res.end(req.method === 'HEAD' ? undefined : `Found. Redirecting to ${location}`);
      return;
    }
    this.serveBytes('hub', req, res, file, { etag: `"${file.gitSha1}"`, 'x-repo-commit': repo.commit });
  }

  private onCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.cdnOrigin);
    const m = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    const file = m === null ? undefined : this.bySha.get(m[1]);
    if (file === undefined) return this.error('cdn', req, res, 404, null, 'NoSuchKey');
    this.serveBytes('cdn', req, res, file, { etag: `"${file.sha256}"` });
  }

  /** Serves a file's bytes with Range support and the faults that apply. */
  private serveBytes(
    server: 'hub' | 'cdn',
    req: http.IncomingMessage,
    res: http.ServerResponse,
    file: FileEntry,
    extra: http.OutgoingHttpHeaders,
  ): void {
    const f = this.faults;
    if (req.method !== 'HEAD' && f.unavailable?.file === file.path && f.unavailable.times > 0) {
      f.unavailable.times--;
      return this.error(server, req, res, 503, null, 'Service Unavailable', file.path);
    }
    if (req.method !== 'HEAD' && f.tooMany?.file === file.path && f.tooMany.times > 0) {
      f.tooMany.times--;
      this.record(server, req, 429, file.path);
      res.writeHead(429, { 'retry-after': String(f.tooMany.retryAfter), 'content-type': 'text/plain' });
      res.end('Too Many Requests');
      return;
    }
    let data = file.data;
    if (f.corrupt?.file === file.path) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0xff;
    }
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const headers: http.OutgoingHttpHeaders = { ...extra, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (range !== null && !f.ignoreRange) {
      start = Number(range[1]);
      if (start >= data.length) {
        this.record(server, req, 416, file.path);
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    headers['content-length'] = String(body.length);
    this.record(server, req, status, file.path);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cut = f.cutAfter;
    if (cut !== undefined && cut.file === file.path && (cut.times ?? 1) > 0) {
      cut.times = (cut.times ?? 1) - 1;
      // Send the first bytes, then drop the connection once they are flushed: the client sees a
      // body shorter than Content-Length, as when a link goes down mid-download.
      res.write(body.subarray(0, Math.min(cut.bytes, body.length)), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  }
}
