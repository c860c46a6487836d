/**
 * The Hugging Face hub cache, shared with Python's huggingface_hub (and so with transformers,
 * `hf download`, `hf cache scan`):
 *
 * ```
 * <cache>/models--<owner>--<name>/blobs/<etag>                  file contents: the sha256 for LFS files, the git blob sha1 otherwise
 * <cache>/models--<owner>--<name>/blobs/<etag>.florence2.incomplete   our download in progress (resumable)
 * <cache>/models--<owner>--<name>/snapshots/<commit>/<path>     relative symlink into blobs/
 * <cache>/models--<owner>--<name>/refs/<revision>               the commit a branch or tag resolved to
 * <cache>/.locks/models--<owner>--<name>/florence2.lock         held while a florence2 process pulls the repository
 * ```
 *
 * A blob appears only complete and verified (one rename of its `.incomplete`), and a snapshot file
 * only as a symlink to a complete blob, so a reader never sees half a file. A snapshot is usable for a
 * dtype table when it has the required files and each module's ONNX file (pulls fetch those last).
 * A snapshot's folder path names its repository and commit, so no manifest of our own is kept.
 *
 * Our own code, not `@huggingface/hub`'s: its `downloadFileToCacheDir` (2.17) neither resumes nor
 * checks size or sha256, takes no lock, has no offline mode and writes no `refs/`; its cache-root
 * helper reads `process.env` only (we take an `env`); for its scan see {@link listModels}. The tests
 * use its `scanCacheDir` as an independent reader of what we write.
 */
import { existsSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { basename, dirname, join, relative, sep } from 'node:path';
import { mkdir, open, readFile, readdir, readlink, rename, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { DTYPE_SUFFIX, MODULES, type Dtype, type ModuleName } from '../runtime/model-files';
import { HubError, LockedError } from './errors';
import { REQUIRED_FILES, onnxPath, type DtypeByModule } from './dtypes';
import { aliasOf, repoId } from './names';

/** A full commit id: revisions of this form name a snapshot directly (no ref to read). */
export const COMMIT = /^[0-9a-f]{40}$/;

/** Suffix of our resumable downloads in `blobs/` (not huggingface_hub's `.incomplete`: see downloadFile). */
export const INCOMPLETE = '.florence2.incomplete';

/**
 * The hub cache root, as huggingface_hub finds it: `HF_HUB_CACHE` (or its old name
 * `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
 * `~/.cache/huggingface/hub`.
 */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const set = (v: string | undefined) => (v !== undefined && v.trim() !== '' ? v : undefined);
  const direct = set(env.HF_HUB_CACHE) ?? set(env.HUGGINGFACE_HUB_CACHE);
  if (direct !== undefined) return direct;
  const hfHome = set(env.HF_HOME) ?? join(set(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'huggingface');
  return join(hfHome, 'hub');
}

/**
 * Where florence2 before the hub cache kept a revision (`$FLORENCE2_HOME/models/<owner>--<name>/<revision>`,
 * default `~/.cache/florence2`), when that folder is still there: such a folder loads as is with
 * `--model PATH`. It is not read otherwise, nor moved; messages point at it.
 */
export function legacyFolder(env: NodeJS.ProcessEnv, repo: string, revision: string): string | null {
  const home = env.FLORENCE2_HOME !== undefined && env.FLORENCE2_HOME !== '' ? env.FLORENCE2_HOME : join(homedir(), '.cache', 'florence2');
  const dir = join(home, 'models', repo.replace('/', '--'), encodeURIComponent(revision));
  return existsSync(join(dir, '.florence2-model.json')) ? dir : null;
}

/** `models--owner--name`, the folder of a model repository. */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

/** Inverse of {@link repoFolderName}; null for folders that are not a model repository's. */
export function repoFromFolderName(folder: string): string | null {
  const parts = folder.split('--');
  if (parts.length !== 3 || parts[0] !== 'models') return null;
  const repo = `${parts[1]}/${parts[2]}`;
  try {
    return repoId(repo) === repo ? repo : null;
  } catch {
    return null;
  }
}

/** Where a repository's blobs, snapshots and refs live. */
export function repoDir(cacheDir: string, repo: string): string {
  return join(cacheDir, repoFolderName(repo));
}

/** The snapshot folder of a commit (it may not exist). */
export function snapshotDir(cacheDir: string, repo: string, commit: string): string {
  return join(repoDir(cacheDir, repo), 'snapshots', commit);
}

/**
 * A branch or tag name as a path under `refs/` (huggingface_hub nests `refs/pr/1`). Refused: what
 * could leave the folder or collide with a file of ours.
 */
export function checkRevision(revision: string): string {
  const parts = revision.split('/');
  if (
    revision === '' ||
    parts.some((p) => p === '' || p === '.' || p === '..') ||
    // eslint-disable-next-line no-control-regex -- control characters in a revision are what is refused
    /[\u0000-\u001f\\]/.test(revision)
  ) {
    throw new HubError(`invalid revision ${JSON.stringify(revision)}`);
  }
  return revision;
}

/** The commit a revision resolves to in the cache: itself for a commit, else what `refs/<revision>` holds. */
export async function cachedCommit(cacheDir: string, repo: string, revision: string): Promise<string | null> {
  if (COMMIT.test(revision)) return revision;
  try {
    const commit = (await readFile(join(repoDir(cacheDir, repo), 'refs', checkRevision(revision)), 'utf8')).trim();
    return COMMIT.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** Records the commit of a branch or tag (atomically; no newline, as huggingface_hub writes and reads it). */
export async function writeRef(cacheDir: string, repo: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const file = join(repoDir(cacheDir, repo), 'refs', checkRevision(revision));
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, commit);
  await rename(tmp, file);
}

/** Size of a snapshot file when it is there (through its symlink); null when absent or dangling. */
export async function presentSize(file: string): Promise<number | null> {
  try {
    const s = await stat(file);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

/**
 * Places a verified blob in a snapshot: a relative symlink (`../../blobs/<etag>`, deeper for files in
 * folders), made under a temporary name and renamed over the path so it appears whole.
 */
export async function linkIntoSnapshot(blob: string, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.link`;
  await rm(tmp, { force: true });
  await symlink(relative(dirname(file), blob), tmp);
  await rename(tmp, file);
}

/** The ONNX files (as repository paths) a snapshot has, per module and dtype. */
export async function dtypesPresent(dir: string): Promise<Partial<Record<ModuleName, Dtype[]>>> {
  const out: Partial<Record<ModuleName, Dtype[]>> = {};
  for (const m of MODULES) {
    const ds: Dtype[] = [];
    for (const d of Object.keys(DTYPE_SUFFIX) as Dtype[]) if ((await presentSize(join(dir, onnxPath(m, d)))) !== null) ds.push(d);
    if (ds.length > 0) out[m] = ds;
  }
  return out;
}

/** The files a snapshot lacks to load with `dtype` (the required files and each module's ONNX file). */
export async function missingFiles(dir: string, dtype: DtypeByModule): Promise<string[]> {
  const missing: string[] = [];
  for (const p of [...REQUIRED_FILES, ...MODULES.map((m) => onnxPath(m, dtype[m]))])
    if ((await presentSize(join(dir, p))) === null) missing.push(p);
  return missing;
}

/** The repository and commit of a folder that is a snapshot in a hub cache; null for any other folder. */
export function snapshotOf(dir: string): { repo: string; commit: string } | null {
  const commit = basename(dir);
  const snapshots = dirname(dir);
  const repo = repoFromFolderName(basename(dirname(snapshots)));
  return COMMIT.test(commit) && basename(snapshots) === 'snapshots' && repo !== null ? { repo, commit } : null;
}

/** A cached model revision, as `models list` shows it. */
export interface CachedModel {
  /** The alias when the repository has one, else the repository id. */
  name: string;
  repo: string;
  /** The refs (branches, tags) that point at the commit; the commit itself when none does. */
  revision: string;
  commit: string;
  /** The snapshot folder. */
  dir: string;
  /** `complete`: has the required files and one ONNX file per module; `partial`: an interrupted pull that the next pull resumes. */
  state: 'complete' | 'partial';
  /** Bytes of the snapshot's blobs. */
  bytes: number;
  files: number;
  dtypes: Partial<Record<ModuleName, Dtype[]>>;
  /** When the newest blob was written. */
  modifiedAt: string;
}

/**
 * Every model snapshot in the cache (complete and partial), by repository and revision; datasets and
 * spaces are skipped. Our own scan: `scanCacheDir` of @huggingface/hub (2.17) does not descend into
 * snapshot subfolders (it would miss `onnx/`) and drops a repository whose `refs/` is missing.
 */
export async function listModels(cacheDir: string = hubCacheDir()): Promise<CachedModel[]> {
  const out: CachedModel[] = [];
  const folders = await readdir(cacheDir).catch(() => [] as string[]);
  for (const folder of folders.sort()) {
    const repo = repoFromFolderName(folder);
    if (repo === null) continue;
    const root = join(cacheDir, folder);
    const refs = new Map<string, string[]>();
    for (const e of await readdir(join(root, 'refs'), { recursive: true, withFileTypes: true }).catch(() => [])) {
      if (!e.isFile()) continue;
      const ref = relative(join(root, 'refs'), join(e.parentPath, e.name)).split(sep).join('/');
      const commit = (await readFile(join(e.parentPath, e.name), 'utf8').catch(() => '')).trim();
      refs.set(commit, [...(refs.get(commit) ?? []), ref]);
    }
    for (const commit of (await readdir(join(root, 'snapshots')).catch(() => [] as string[])).sort()) {
      if (!COMMIT.test(commit)) continue;
      const dir = join(root, 'snapshots', commit);
      let bytes = 0;
      let files = 0;
      let modified = 0;
      for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
        if (e.isDirectory()) continue;
        const s = await stat(join(e.parentPath, e.name)).catch(() => null);
        if (s === null || !s.isFile()) continue;
        bytes += s.size;
        files++;
        modified = Math.max(modified, s.mtimeMs);
      }
      const dtypes = await dtypesPresent(dir);
      out.push({
        name: aliasOf(repo) ?? repo,
        repo,
        revision: (refs.get(commit) ?? [commit]).sort().join(','),
        commit,
        dir,
        state: (await loadable(dir)) ? 'complete' : 'partial',
        bytes,
        files,
        dtypes,
        modifiedAt: new Date(modified).toISOString(),
      });
    }
  }
  return out;
}

/** Whether a snapshot has the required files and one ONNX variant of every module. */
async function loadable(dir: string): Promise<boolean> {
  for (const f of REQUIRED_FILES) if ((await presentSize(join(dir, f))) === null) return false;
  const dtypes = await dtypesPresent(dir);
  return MODULES.every((m) => dtypes[m] !== undefined);
}

/** The snapshot folder of a model revision when it holds a loadable model, else null. */
export async function modelPath(name: string, cacheDir: string = hubCacheDir(), revision = 'main'): Promise<string | null> {
  const repo = repoId(name);
  const commit = await cachedCommit(cacheDir, repo, revision);
  if (commit === null) return null;
  const dir = snapshotDir(cacheDir, repo, commit);
  return (await loadable(dir)) ? dir : null;
}

/** The lock file of a repository (in huggingface_hub's `.locks` folder, under a name of ours). */
export function lockFile(cacheDir: string, repo: string): string {
  return join(cacheDir, '.locks', repoFolderName(repo), 'florence2.lock');
}

/**
 * Deletes a model from the cache: one revision (its snapshot, the refs pointing at it, and the blobs
 * no other snapshot uses), or the whole repository when `revision` is omitted. Refuses
 * (LockedError) while a live florence2 process pulls it. Returns the folders removed.
 */
export async function removeModel(name: string, cacheDir: string = hubCacheDir(), revision?: string): Promise<string[]> {
  const repo = repoId(name);
  const root = repoDir(cacheDir, repo);
  const lock = lockFile(cacheDir, repo);
  const holder = await lockHolder(lock);
  if (holder.live) throw new LockedError(lock, holder.pid);
  if (revision === undefined) {
    if ((await presentDir(root)) === false) return [];
    await rm(root, { recursive: true, force: true });
    await rm(lock, { force: true });
    await removeIfEmpty(dirname(lock));
    return [root];
  }
  const commit = await cachedCommit(cacheDir, repo, revision);
  if (commit === null) return [];
  const snap = snapshotDir(cacheDir, repo, commit);
  if (!(await presentDir(snap))) return [];
  await rm(snap, { recursive: true, force: true });
  // refs naming the removed commit go with it (huggingface_hub refuses refs to missing snapshots)
  const refs = join(root, 'refs');
  const refFiles = await readdir(refs, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of refFiles) {
    if (!e.isFile()) continue;
    const f = join(e.parentPath, e.name);
    if ((await readFile(f, 'utf8').catch(() => '')).trim() === commit) await rm(f, { force: true });
  }
  // blobs no remaining snapshot links to
  const used = new Set<string>();
  for (const s of await readdir(join(root, 'snapshots')).catch(() => [])) {
    for (const e of await readdir(join(root, 'snapshots', s), { recursive: true, withFileTypes: true })) {
      if (!e.isSymbolicLink()) continue;
      used.add(basename(await readlink(join(e.parentPath, e.name))));
    }
  }
  for (const b of await readdir(join(root, 'blobs')).catch(() => []))
    if (!used.has(b) && !b.endsWith(INCOMPLETE)) await rm(join(root, 'blobs', b), { force: true });
  return [snap];
}

async function presentDir(dir: string): Promise<boolean> {
  return stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Removes a folder when it is empty (a repository folder whose last revision went). */
export async function removeIfEmpty(dir: string): Promise<void> {
  try {
    await rmdir(dir);
  } catch {
    // not empty or already gone
  }
}

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

/** Whether a process exists (EPERM: it exists but belongs to another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Who holds a lock file, and whether that holder is alive. A lock from another host (a cache on a
 * shared file system) cannot be checked and counts as live; an unreadable one (its writer died between
 * creating and writing it) counts as stale after a minute.
 */
async function lockHolder(file: string): Promise<{ live: boolean; pid: number | null }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return { live: false, pid: null };
  }
  let info: LockInfo | null;
  try {
    info = JSON.parse(text) as LockInfo;
  } catch {
    info = null;
  }
  if (info === null || !Number.isInteger(info.pid)) {
    const age = await stat(file).then(
      (s) => Date.now() - s.mtimeMs,
      () => Infinity,
    );
    return { live: age < 60_000, pid: null };
  }
  if (info.host !== hostname()) return { live: true, pid: info.pid };
  return { live: pidAlive(info.pid), pid: info.pid };
}

/**
 * Takes a download lock (created exclusively, holding pid and host). A stale lock — its process is
 * gone — is replaced; a live one throws {@link LockedError}. Returns the release function.
 *
 * Our own: huggingface_hub locks each blob with an OS file lock (`filelock`), which Node cannot take;
 * a pid file lets `models rm` and a second pull name the holder.
 */
export async function acquireLock(file: string): Promise<() => Promise<void>> {
  await mkdir(dirname(file), { recursive: true });
  const info: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(file, 'wx');
      try {
        await fh.writeFile(JSON.stringify(info));
      } finally {
        await fh.close();
      }
      return async () => {
        await rm(file, { force: true });
        await removeIfEmpty(dirname(file));
        await removeIfEmpty(dirname(dirname(file)));
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await lockHolder(file);
      if (holder.live || attempt >= 2) throw new LockedError(file, holder.pid);
      // Move the stale lock aside first: a rename is atomic, so of two processes that both found it
      // stale only one removes it, and the other's retry sees the winner's fresh lock.
      const aside = `${file}.stale-${process.pid}`;
      await rename(file, aside).then(
        () => rm(aside, { force: true }),
        () => undefined,
      );
    }
  }
}
