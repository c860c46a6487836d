/**
 * `resolveModel`: the folder of a Hub model in the cache, downloading what is missing — the file list
 * from the Hub API, each file resumable and verified in a `.partial` folder, placed atomically with
 * the manifest last. Offline mode never touches the network.
 */
import { join, dirname } from 'node:path';
import { mkdir, readdir, rename, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { MODULES, type DtypeChoice } from '../runtime/model-files';
import { ChecksumError, HubError, OfflineError } from './errors';
import { type DtypeByModule, REQUIRED_FILES, autoDtypes, dtypesFrom, filesToFetch, onnxPath } from './dtypes';
import { DEFAULT_REVISION, repoId, aliasOf } from './names';
import {
  PARTIAL_STATE,
  type Manifest,
  type ManifestFile,
  acquireLock,
  cacheHome,
  dtypesPresent,
  readManifest,
  removeIfEmpty,
  repoDir,
  revisionDir,
  writeManifest,
} from './cache';
import { type FileMeta, type HubClient, downloadFile, fileMeta, httpError, withRetries } from './download';
import { header, open as httpOpen, readText } from './http';

/** The Hub's public endpoint. */
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Settings read from the environment. */
export interface HubSettings {
  /** `FLORENCE2_HOME`, default `~/.cache/florence2`. */
  home: string;
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
    home: cacheHome(env),
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
  home?: string;
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
  /** The folder to load (`Florence2.load(dir, { dtype })`). */
  dir: string;
  /** Whether any file was downloaded by this call. */
  downloaded: boolean;
  repo: string;
  revision: string;
  commit: string;
  /** The dtypes the folder was resolved for. */
  dtype: DtypeByModule;
}

// Pulls of one folder within this process run one after another (the lock file holds other processes off).
const inProcess = new Map<string, Promise<unknown>>();

/** Resolves a model to a complete cached folder, downloading it (or the missing dtype files) when needed. */
export async function resolveModel(spec: ResolveSpec): Promise<ResolvedModel> {
  const env = hubSettings(spec.env ?? process.env);
  const repo = repoId(spec.name);
  const revision = spec.revision ?? DEFAULT_REVISION;
  // `auto` (or none given) is settled against what the cache or the repository has, in resolveLocked/download
  const auto = spec.dtype === undefined || spec.dtype === 'auto' ? (spec.device ?? 'cpu') : null;
  const dtype = dtypesFrom(spec.dtype, spec.device);
  const home = spec.home ?? env.home;
  const dir = revisionDir(home, repo, revision);
  const previous = inProcess.get(dir) ?? Promise.resolve();
  const run = previous
    .catch(() => undefined)
    .then(() =>
      resolveLocked({
        spec,
        repo,
        revision,
        dtype,
        auto,
        home,
        dir,
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
  inProcess.set(dir, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(dir) === run) inProcess.delete(dir);
  }
}

interface Job {
  spec: ResolveSpec;
  repo: string;
  revision: string;
  dtype: DtypeByModule;
  /** The provider `auto` is chosen for, or null when the dtype was given. */
  auto: string | null;
  home: string;
  dir: string;
  offline: boolean;
  client: HubClient;
}

/**
 * The files a cached folder lacks for `dtype`: the required files, the dtype's ONNX files and every
 * other file its manifest lists, each checked by size (a stat, no re-hash, keeps server starts fast;
 * a file deleted by hand is fetched again).
 */
async function missingFiles(dir: string, manifest: Manifest, dtype: DtypeByModule): Promise<string[]> {
  const needed = new Set<string>([...REQUIRED_FILES, ...MODULES.map((m) => onnxPath(m, dtype[m]))]);
  for (const p of Object.keys(manifest.files)) if (!p.startsWith('onnx/')) needed.add(p);
  const missing: string[] = [];
  for (const p of needed) {
    const f = manifest.files[p];
    const size =
      f === undefined
        ? null
        : await stat(join(dir, p)).then(
            (s) => s.size,
            () => null,
          );
    if (f === undefined || size !== f.size) missing.push(p);
  }
  return missing;
}

function offlineMessage(job: Job, missing: string[] | null): string {
  const name = aliasOf(job.repo) ?? job.repo;
  const rev = job.revision === DEFAULT_REVISION ? '' : ` --revision ${job.revision}`;
  const what =
    missing === null
      ? `model ${job.repo}${job.revision === DEFAULT_REVISION ? '' : ` (revision ${job.revision})`} is not in the cache (${job.dir})`
      : `the cached model ${job.repo} (${job.dir}) lacks ${missing.join(', ')} for the dtypes asked for`;
  return `${what}, and offline mode is on (--offline, FLORENCE2_OFFLINE or HF_HUB_OFFLINE), so it cannot be downloaded.
Either serve a model folder you already have: florence2 serve --model DIR (or FLORENCE2_MODEL=DIR),
or pull it while online: florence2 models pull ${name}${rev}`;
}

async function resolveLocked(job: Job): Promise<ResolvedModel> {
  const cached = await readManifest(job.dir);
  if (cached !== null) {
    // `auto` takes the best variants the cache already has, so a start needs no network
    if (job.auto !== null) job.dtype = autoDtypes(job.auto, (m, d) => cached.files[onnxPath(m, d)] !== undefined);
    const missing = await missingFiles(job.dir, cached, job.dtype);
    if (missing.length === 0)
      return { dir: job.dir, downloaded: false, repo: job.repo, revision: job.revision, commit: cached.commit, dtype: job.dtype };
    if (job.offline) throw new OfflineError(offlineMessage(job, missing));
  } else if (job.offline) {
    throw new OfflineError(offlineMessage(job, null));
  }

  await mkdir(repoDir(job.home, job.repo), { recursive: true });
  const release = await acquireLock(`${job.dir}.lock`);
  const partial = `${job.dir}.partial`;
  try {
    return await download(job, partial);
  } catch (err) {
    if (err instanceof ChecksumError) {
      // Nothing of a failed verification stays: the next pull starts clean.
      await rm(partial, { recursive: true, force: true });
    } else {
      await removeIfNoData(partial);
    }
    throw err;
  } finally {
    await release();
    await removeIfEmpty(repoDir(job.home, job.repo));
  }
}

/** Removes a `.partial` folder that holds no downloaded bytes (a failure before any data came). */
async function removeIfNoData(partial: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(partial, { withFileTypes: true, recursive: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isFile() || e.name === PARTIAL_STATE) continue;
    const parent = e.parentPath ?? (e as unknown as { path: string }).path;
    if ((await stat(join(parent, e.name))).size > 0) return;
  }
  await rm(partial, { recursive: true, force: true });
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
    return { sha: typeof json.sha === 'string' ? json.sha : null, siblings };
  });
}

async function download(job: Job, partial: string): Promise<ResolvedModel> {
  const { client, repo, revision } = job;
  // Another process may have finished while we waited for the lock.
  let existing = await readManifest(job.dir);
  if (existing !== null && (await missingFiles(job.dir, existing, job.dtype)).length === 0) {
    return { dir: job.dir, downloaded: false, repo, revision, commit: existing.commit, dtype: job.dtype };
  }
  // Extending a folder fetches at its commit, so its files never mix two commits.
  const info = await repoInfo(client, repo, existing?.commit ?? revision);
  if (job.auto !== null) {
    const have = new Set(info.siblings);
    job.dtype = autoDtypes(job.auto, (m, d) => have.has(onnxPath(m, d)), true);
  }
  let wanted = filesToFetch(info.siblings, job.dtype, repo, revision);
  if (existing !== null) {
    const missing = new Set(await missingFiles(job.dir, existing, job.dtype));
    wanted = wanted.filter((p) => missing.has(p) || existing?.files[p] === undefined);
  }
  let commit = existing?.commit ?? info.sha;

  const metas: FileMeta[] = [];
  for (const p of wanted) {
    // Pin every file to one commit (the list's) so a push during the download cannot mix versions.
    const meta = await fileMeta(client, repo, commit ?? revision, p);
    commit ??= meta.commit;
    metas.push(meta);
  }
  const pinned = commit ?? revision;

  // A partial folder from an interrupted pull of another commit cannot be resumed.
  const state = await readFile(join(partial, PARTIAL_STATE), 'utf8').then(
    (t) => JSON.parse(t) as { commit?: string },
    () => null,
  );
  if (state !== null && state.commit !== pinned) await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await writeFile(join(partial, PARTIAL_STATE), JSON.stringify({ repo, revision, commit: pinned }));

  const sizes = metas.map((m) => m.size);
  const total = sizes.every((s) => s !== null) ? sizes.reduce((a, b) => a + b, 0) : null;
  // Bytes already there from an interrupted run count as done from the start.
  const onDisk = await Promise.all(
    metas.map(async (m) => {
      const dest = join(partial, m.path);
      return stat(dest).then(
        (s) => s.size,
        () =>
          stat(`${dest}.incomplete`).then(
            (s) => s.size,
            () => 0,
          ),
      );
    }),
  );
  const files: Record<string, ManifestFile> = {};
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
    const got = await downloadFile(client, repo, pinned, meta, join(partial, meta.path), (n) => {
      onDisk[i] = n;
      report('progress');
    });
    onDisk[i] = got.size;
    files[meta.path] = { size: got.size, sha256: got.sha256, verified: got.verified };
    report('done');
  }

  existing = await readManifest(job.dir);
  const allFiles = { ...(existing?.files ?? {}), ...files };
  const manifest: Manifest = {
    format: 1,
    repo,
    revision,
    commit: pinned,
    endpoint: client.endpoint,
    files: allFiles,
    dtypes: dtypesPresent(Object.keys(allFiles)),
    completedAt: new Date().toISOString(),
  };
  await rm(join(partial, PARTIAL_STATE), { force: true });
  if (existing === null) {
    // A folder without a manifest is not ours to keep (nothing we write looks like that).
    await rm(job.dir, { recursive: true, force: true });
    await writeManifest(partial, manifest);
    await rename(partial, job.dir);
  } else {
    // Extending: every new file is complete and verified before it moves in; the manifest that
    // lists them is replaced last, so a reader sees the old or the new folder, never a mix.
    for (const p of Object.keys(files)) {
      await mkdir(dirname(join(job.dir, p)), { recursive: true });
      await rename(join(partial, p), join(job.dir, p));
    }
    await writeManifest(job.dir, manifest);
    await rm(partial, { recursive: true, force: true });
  }
  return { dir: job.dir, downloaded: metas.length > 0, repo, revision, commit: pinned, dtype: job.dtype };
}
