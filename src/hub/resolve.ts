/**
 * `resolveModel`: the snapshot folder of a Hub model in the hub cache, downloading what is missing —
 * the file list from the Hub API, each file's blob resumable and verified, then linked into the
 * snapshot, and the ref written last. Offline mode never touches the network.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { type DtypeChoice } from '../runtime/model-files';
import { HubError, OfflineError } from './errors';
import { type DtypeByModule, REQUIRED_FILES, autoDtypes, dtypesFrom, filesToFetch, onnxPath } from './dtypes';
import { DEFAULT_REVISION, repoId, aliasOf } from './names';
import {
  COMMIT,
  INCOMPLETE,
  acquireLock,
  cachedCommit,
  checkRevision,
  dtypesPresent,
  hubCacheDir,
  legacyFolder,
  linkIntoSnapshot,
  lockFile,
  missingFiles,
  presentSize,
  removeIfEmpty,
  repoDir,
  snapshotDir,
  writeRef,
} from './cache';
import { type FileMeta, type HubClient, downloadFile, fileMeta, httpError, withRetries } from './download';
import { header, open as httpOpen, readText } from './http';

/** The Hub's public endpoint. */
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Settings read from the environment. */
export interface HubSettings {
  /** The hub cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub` (see hubCacheDir). */
  cacheDir: string;
  /** `HF_ENDPOINT`, default https://huggingface.co. */
  endpoint: string;
  /** `HF_TOKEN`. */
  token?: string;
  /** `FLORENCE2_OFFLINE` or `HF_HUB_OFFLINE` set to 1/true/yes/on. */
  offline: boolean;
}

const truthy = (v: string | undefined) => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());

/** The Hub settings an environment gives. */
export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const token = env.HF_TOKEN?.trim();
  return {
    cacheDir: hubCacheDir(env),
    endpoint: (env.HF_ENDPOINT?.trim() || DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token: token ? token : undefined,
    offline: truthy(env.FLORENCE2_OFFLINE) || truthy(env.HF_HUB_OFFLINE),
  };
}

/** Download progress, reported on each file's start, as bytes arrive, and at its end. */
export interface DownloadProgress {
  event: 'start' | 'progress' | 'done';
  /** Repository path of the file. */
  file: string;
  /** 0-based index of the file among `fileCount`. */
  fileIndex: number;
  fileCount: number;
  /** Bytes of this file on disk (resumed bytes included). */
  fileBytes: number;
  /** Size of the file, when the Hub stated it. */
  fileTotal: number | null;
  /** Bytes of all files of this pull on disk. */
  bytes: number;
  /** Size of all files, when every size is known. */
  total: number | null;
}

/** What to resolve. Unset options come from `env` (see {@link hubSettings}). */
export interface ResolveSpec {
  /** An alias (`base`, `base-ft`, `large`, `large-ft`) or `owner/name`. */
  name: string;
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /**
   * One dtype for every module or one per module (modules not named: fp32); default `auto`: for
   * `device`, per module the best variant of {@link autoDtypes} the cache has, or when downloading,
   * the repository has.
   */
  dtype?: DtypeChoice | 'auto';
  /** Execution provider the dtype default is chosen for; default `cpu`. */
  device?: string;
  offline?: boolean;
  /** The hub cache; default from `env` (see {@link hubSettings}). */
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  /** Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: DownloadProgress) => void;
  /** Retries of a request that fails without progress (connection error, 5xx, 429); default 5. */
  retries?: number;
  /** First retry delay in ms, doubling per retry; default 1000. */
  retryDelayMs?: number;
  /** Socket idle timeout in ms; default 60000. */
  timeoutMs?: number;
}

/** A usable model folder. */
export interface ResolvedModel {
  /** The snapshot folder to load (`Florence2.load(dir, { dtype })`): `<cache>/models--o--n/snapshots/<commit>`. */
  dir: string;
  /** Whether any file was downloaded by this call. */
  downloaded: boolean;
  repo: string;
  revision: string;
  commit: string;
  /** The dtypes the folder was resolved for. */
  dtype: DtypeByModule;
}

// Pulls of one repository within this process run one after another (the lock file holds other processes off).
const inProcess = new Map<string, Promise<unknown>>();

/** Resolves a model to a complete cached folder, downloading it (or the missing dtype files) when needed. */
export async function resolveModel(spec: ResolveSpec): Promise<ResolvedModel> {
  const env = hubSettings(spec.env ?? process.env);
  const repo = repoId(spec.name);
  const revision = checkRevision(spec.revision ?? DEFAULT_REVISION);
  // `auto` (or none given) is settled against what the cache or the repository has, in resolveLocked/download
  const auto = spec.dtype === undefined || spec.dtype === 'auto' ? (spec.device ?? 'cpu') : null;
  const dtype = dtypesFrom(spec.dtype, spec.device);
  const cacheDir = spec.cacheDir ?? env.cacheDir;
  const key = repoDir(cacheDir, repo);
  const previous = inProcess.get(key) ?? Promise.resolve();
  const run = previous
    .catch(() => undefined)
    .then(() =>
      resolveLocked({
        spec,
        repo,
        revision,
        dtype,
        auto,
        cacheDir,
        env: spec.env ?? process.env,
        offline: spec.offline ?? env.offline,
        client: {
          endpoint: (spec.endpoint ?? env.endpoint).replace(/\/+$/, ''),
          token: spec.token ?? env.token,
          timeoutMs: spec.timeoutMs ?? 60_000,
          retries: spec.retries ?? 5,
          retryDelayMs: spec.retryDelayMs ?? 1000,
        },
      }),
    );
  inProcess.set(key, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(key) === run) inProcess.delete(key);
  }
}

interface Job {
  spec: ResolveSpec;
  repo: string;
  revision: string;
  dtype: DtypeByModule;
  /** The provider `auto` is chosen for, or null when the dtype was given. */
  auto: string | null;
  cacheDir: string;
  offline: boolean;
  /** The environment (for the legacy-cache hint). */
  env: NodeJS.ProcessEnv;
  client: HubClient;
}

function offlineMessage(job: Job, where: string, missing: string[] | null): string {
  const name = aliasOf(job.repo) ?? job.repo;
  const rev = job.revision === DEFAULT_REVISION ? '' : ` --revision ${job.revision}`;
  const what =
    missing === null
      ? `model ${job.repo}${job.revision === DEFAULT_REVISION ? '' : ` (revision ${job.revision})`} is not in the cache (${where})`
      : `the cached model ${job.repo} (${where}) lacks ${missing.join(', ')} for the dtypes asked for`;
  const legacy = legacyFolder(job.env, job.repo, job.revision);
  const old =
    legacy === null
      ? ''
      : `\nAn earlier florence2 version downloaded it to ${legacy}: florence2 serve --model ${legacy} serves that folder.`;
  return `${what}, and offline mode is on (--offline, FLORENCE2_OFFLINE or HF_HUB_OFFLINE), so it cannot be downloaded.
Either serve a model folder you already have: florence2 serve --model DIR (or FLORENCE2_MODEL=DIR),
or pull it while online: florence2 models pull ${name}${rev}${old}`;
}

/** `auto` settled against the ONNX files a snapshot has. */
async function settleAuto(job: Job, dir: string): Promise<void> {
  if (job.auto === null) return;
  const have = await dtypesPresent(dir);
  job.dtype = autoDtypes(job.auto, (m, d) => have[m]?.includes(d) === true);
}

/**
 * The cache first — a snapshot found through `refs/<revision>` (or the commit itself) that has what
 * `dtype` needs is used without a request, whoever downloaded it — then a pull of what it lacks.
 */
async function resolveLocked(job: Job): Promise<ResolvedModel> {
  const commit = await cachedCommit(job.cacheDir, job.repo, job.revision);
  if (commit !== null && existsSync(snapshotDir(job.cacheDir, job.repo, commit))) {
    const dir = snapshotDir(job.cacheDir, job.repo, commit);
    await settleAuto(job, dir);
    const missing = await missingFiles(dir, job.dtype);
    if (missing.length === 0) return { dir, downloaded: false, repo: job.repo, revision: job.revision, commit, dtype: job.dtype };
    if (job.offline) throw new OfflineError(offlineMessage(job, dir, missing));
  } else if (job.offline) {
    throw new OfflineError(offlineMessage(job, repoDir(job.cacheDir, job.repo), null));
  }

  const release = await acquireLock(lockFile(job.cacheDir, job.repo));
  try {
    return await download(job);
  } finally {
    await release();
    await removeEmptyRepo(repoDir(job.cacheDir, job.repo));
  }
}

/** After a failed first pull, removes the folders it made that hold nothing (a snapshot with no file, the repository). */
async function removeEmptyRepo(root: string): Promise<void> {
  for (const s of await readdir(join(root, 'snapshots')).catch(() => [] as string[])) await removeIfEmpty(join(root, 'snapshots', s));
  for (const d of ['snapshots', 'blobs', 'refs']) await removeIfEmpty(join(root, d));
  await removeIfEmpty(root);
}

/** `GET /api/models/{repo}/revision/{revision}`: the commit and the file list. */
async function repoInfo(client: HubClient, repo: string, revision: string): Promise<{ sha: string | null; siblings: string[] }> {
  const tokenOrigin = new URL(client.endpoint).origin;
  const get = async (url: string) => {
    const { res, url: final } = await httpOpen(url, {
      token: client.token,
      tokenOrigin,
      follow: true,
      timeoutMs: client.timeoutMs,
      headers: { accept: 'application/json' },
    });
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      res.resume();
      return { status, headers: res.headers, url: final, body: null };
    }
    return { status, headers: res.headers, url: final, body: await readText(res) };
  };
  return withRetries(client, `${repo} file list`, async () => {
    let r = await get(`${client.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`);
    // Mirrors without the revision route still answer the plain route for the default branch.
    if (r.status === 404 && revision === DEFAULT_REVISION && header(r.headers, 'x-error-code') === undefined)
      r = await get(`${client.endpoint}/api/models/${repo}`);
    if (r.body === null) throw httpError(r.status, r.headers, r.url, { repo, revision }, client);
    let json: { sha?: unknown; siblings?: unknown };
    try {
      json = JSON.parse(r.body) as typeof json;
    } catch {
      throw new HubError(`${repo}: the Hub's file list is not JSON (from ${r.url})`);
    }
    if (!Array.isArray(json.siblings)) throw new HubError(`${repo}: the Hub's answer has no file list (siblings)`);
    const siblings = json.siblings.map((s: { rfilename?: unknown }) => s?.rfilename).filter((s): s is string => typeof s === 'string');
    return { sha: typeof json.sha === 'string' && COMMIT.test(json.sha) ? json.sha : null, siblings };
  });
}

/** Loading needs the required files and ONNX graphs: they go last, so a snapshot that has them has the rest. */
function fetchOrder(path: string): number {
  if ((REQUIRED_FILES as readonly string[]).includes(path)) return 3;
  if (path.startsWith('onnx/') && path.endsWith('.onnx')) return 2;
  return path.startsWith('onnx/') ? 1 : 0;
}

async function download(job: Job): Promise<ResolvedModel> {
  const { client, repo, revision, cacheDir } = job;
  // Another process may have finished while we waited for the lock; a cached commit is kept, so
  // the files added to a snapshot never mix two commits.
  const cached = await cachedCommit(cacheDir, repo, revision);
  if (cached !== null) {
    const dir = snapshotDir(cacheDir, repo, cached);
    await settleAuto(job, dir);
    if ((await missingFiles(dir, job.dtype)).length === 0)
      return { dir, downloaded: false, repo, revision, commit: cached, dtype: job.dtype };
  }
  const info = await repoInfo(client, repo, cached ?? revision);
  if (job.auto !== null) {
    const have = new Set(info.siblings);
    job.dtype = autoDtypes(job.auto, (m, d) => have.has(onnxPath(m, d)), true);
  }
  let commit = cached ?? info.sha;
  const listed = filesToFetch(info.siblings, job.dtype, repo, revision).sort((a, b) => fetchOrder(a) - fetchOrder(b));

  // Files a snapshot already has are kept (they link to complete blobs); the rest get their metadata,
  // each pinned to one commit (the list's) so a push during the download cannot mix versions.
  const metas: FileMeta[] = [];
  for (const p of listed) {
    if (commit !== null && (await presentSize(join(snapshotDir(cacheDir, repo, commit), p))) !== null) continue;
    const meta = await fileMeta(client, repo, commit ?? revision, p);
    commit ??= meta.commit;
    metas.push(meta);
  }
  if (commit === null || !COMMIT.test(commit))
    throw new HubError(`${repo}: the Hub stated no commit for revision ${revision} (no sha in the file list, no X-Repo-Commit)`);
  const dir = snapshotDir(cacheDir, repo, commit);
  const blobs = join(repoDir(cacheDir, repo), 'blobs');
  await mkdir(blobs, { recursive: true });

  const sizes = metas.map((m) => m.size);
  const total = sizes.every((s) => s !== null) ? sizes.reduce((a, b) => a + b, 0) : null;
  // Bytes already there from an interrupted run count as done from the start.
  const blobOf = (m: FileMeta) => join(blobs, m.etag ?? `florence2-${commit}-${m.path.replace(/\//g, '--')}`);
  const onDisk = await Promise.all(
    metas.map(async (m) => (await presentSize(blobOf(m))) ?? (await presentSize(`${blobOf(m)}${INCOMPLETE}`)) ?? 0),
  );
  for (const [i, meta] of metas.entries()) {
    const report = (event: DownloadProgress['event']) =>
      job.spec.onProgress?.({
        event,
        file: meta.path,
        fileIndex: i,
        fileCount: metas.length,
        fileBytes: onDisk[i],
        fileTotal: meta.size,
        bytes: onDisk.reduce((a, b) => a + b, 0),
        total,
      });
    report('start');
    let blob = blobOf(meta);
    const got = await downloadFile(client, repo, commit, meta, blob, (n) => {
      onDisk[i] = n;
      report('progress');
    });
    if (meta.etag === null) {
      // No ETag (a plain mirror): name the blob by its content, as a huggingface_hub LFS blob is.
      const named = join(blobs, got.sha256);
      await rm(named, { force: true });
      await rename(blob, named);
      blob = named;
    }
    await linkIntoSnapshot(blob, join(dir, meta.path));
    onDisk[i] = got.size;
    report('done');
  }
  // The ref last: a revision resolves offline only once its snapshot is loadable.
  await writeRef(cacheDir, repo, revision, commit);
  return { dir, downloaded: metas.length > 0, repo, revision, commit, dtype: job.dtype };
}
