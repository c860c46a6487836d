/**
 * The model cache under FLORENCE2_HOME:
 *
 * ```
 * models/<owner>--<name>/<revision>/             complete folder: the model files + .florence2-model.json
 * models/<owner>--<name>/<revision>.partial/     a download in progress or interrupted (resumable)
 * models/<owner>--<name>/<revision>.lock         held while a process downloads into the folder
 * ```
 *
 * A folder counts as a model only when its manifest is there; the manifest is written last, and a
 * new folder appears by one rename of its `.partial` sibling, so a half-downloaded model is never used.
 */
import { hostname, homedir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { open, readFile, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { DTYPE_SUFFIX, MODULES, type Dtype, type ModuleName } from '../runtime/model-files';
import { LockedError } from './errors';
import { onnxPath } from './dtypes';
import { aliasOf, repoFolderName, repoFromFolderName, repoId, revisionFolderName, revisionFromFolderName } from './names';

/** File name of the manifest in a complete model folder. */
export const MANIFEST = '.florence2-model.json';
/** File in a `.partial` folder naming the commit being downloaded (a resume must not mix commits). */
export const PARTIAL_STATE = '.florence2-partial.json';

/** One file of a cached model. */
export interface ManifestFile {
  size: number;
  /** sha256 of the content, computed while downloading. */
  sha256: string;
  /** Whether the Hub stated size and sha256 (an LFS file) and they were checked; small files are checked by size. */
  verified: boolean;
}

/** `.florence2-model.json`. */
export interface Manifest {
  format: 1;
  /** `owner/name`. */
  repo: string;
  /** The revision as asked for (`main`, a tag, a commit). */
  revision: string;
  /** The commit every file was fetched at. */
  commit: string;
  /** The endpoint the files came from. */
  endpoint: string;
  /** Repository path → size and sha256. */
  files: Record<string, ManifestFile>;
  /** Per module, the dtypes whose ONNX file the folder holds. */
  dtypes: Partial<Record<ModuleName, Dtype[]>>;
  /** ISO time the folder was completed (or last extended). */
  completedAt: string;
}

/** The cache root: `FLORENCE2_HOME`, else `~/.cache/florence2`. */
export function cacheHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.FLORENCE2_HOME;
  return h !== undefined && h !== '' ? h : join(homedir(), '.cache', 'florence2');
}

/** Where a repository's revisions live. */
export function repoDir(home: string, repo: string): string {
  return join(home, 'models', repoFolderName(repo));
}

/** The complete folder of a revision (it may not exist). */
export function revisionDir(home: string, repo: string, revision: string): string {
  return join(repoDir(home, repo), revisionFolderName(revision));
}

/** The per-module dtypes present among a list of repository paths. */
export function dtypesPresent(files: Iterable<string>): Partial<Record<ModuleName, Dtype[]>> {
  const set = new Set(files);
  const out: Partial<Record<ModuleName, Dtype[]>> = {};
  for (const m of MODULES) {
    const ds = (Object.keys(DTYPE_SUFFIX) as Dtype[]).filter((d) => set.has(onnxPath(m, d)));
    if (ds.length > 0) out[m] = ds;
  }
  return out;
}

/** Reads a folder's manifest; null when absent or unreadable (the folder is then not a model). */
export async function readManifest(dir: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
    return m && m.format === 1 && typeof m.repo === 'string' && typeof m.files === 'object' && m.files !== null ? m : null;
  } catch {
    return null;
  }
}

/** {@link readManifest}, synchronously (the server reads it once at start). */
export function readManifestSync(dir: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
    return m && m.format === 1 && typeof m.repo === 'string' && typeof m.commit === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** Writes a manifest atomically (temporary file, then rename over the old one). */
export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  const tmp = join(dir, `${MANIFEST}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, join(dir, MANIFEST));
}

/** A cached model, as `models list` shows it. */
export interface CachedModel {
  /** The alias when the repository has one, else the repository id. */
  name: string;
  repo: string;
  revision: string;
  /** Commit of the files; null for a partial download that has not recorded one. */
  commit: string | null;
  dir: string;
  /** `complete`: usable; `partial`: an interrupted download that the next pull resumes. */
  state: 'complete' | 'partial';
  /** Bytes on disk (manifest sizes for complete folders). */
  bytes: number;
  files: number;
  dtypes: Partial<Record<ModuleName, Dtype[]>>;
  completedAt: string | null;
}

async function dirBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const s = await stat(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
    bytes += s.size;
    files++;
  }
  return { bytes, files };
}

async function readJsonOr<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Every model folder in the cache, complete and partial, sorted by repository and revision. */
export async function listModels(home: string = cacheHome()): Promise<CachedModel[]> {
  const out: CachedModel[] = [];
  let repos: string[];
  try {
    repos = await readdir(join(home, 'models'));
  } catch {
    return out;
  }
  for (const folder of repos.sort()) {
    const repo = repoFromFolderName(folder);
    if (repo === null) continue;
    let entries: string[];
    try {
      entries = await readdir(join(home, 'models', folder));
    } catch {
      continue;
    }
    for (const entry of entries.sort()) {
      const dir = join(home, 'models', folder, entry);
      const name = aliasOf(repo) ?? repo;
      if (entry.endsWith('.partial')) {
        const state = await readJsonOr<{ commit?: string }>(join(dir, PARTIAL_STATE));
        const { bytes, files } = await dirBytes(dir).catch(() => ({ bytes: 0, files: 0 }));
        out.push({
          name,
          repo,
          revision: revisionFromFolderName(entry.slice(0, -'.partial'.length)),
          commit: state?.commit ?? null,
          dir,
          state: 'partial',
          bytes,
          files,
          dtypes: {},
          completedAt: null,
        });
        continue;
      }
      if (entry.endsWith('.lock') || entry.endsWith('.old')) continue;
      const m = await readManifest(dir);
      if (m === null) continue;
      const files = Object.values(m.files);
      out.push({
        name,
        repo,
        revision: m.revision,
        commit: m.commit,
        dir,
        state: 'complete',
        bytes: files.reduce((a, f) => a + f.size, 0),
        files: files.length,
        dtypes: m.dtypes,
        completedAt: m.completedAt,
      });
    }
  }
  return out;
}

/** The complete folder of a model revision, or null when it is not cached. */
export async function modelPath(name: string, home: string = cacheHome(), revision = 'main'): Promise<string | null> {
  const dir = revisionDir(home, repoId(name), revision);
  return (await readManifest(dir)) === null ? null : dir;
}

/**
 * Deletes a model from the cache: one revision, or every revision when `revision` is omitted,
 * including interrupted downloads. Refuses (LockedError) while a live process downloads it.
 * Returns the folders removed (empty when nothing was cached).
 */
export async function removeModel(name: string, home: string = cacheHome(), revision?: string): Promise<string[]> {
  const repo = repoId(name);
  const root = repoDir(home, repo);
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return [];
  }
  const revFolder = revision === undefined ? null : revisionFolderName(revision);
  const targets = entries.filter((e) => {
    const base = e.replace(/\.(partial|lock|old)$/, '');
    return (revFolder === null || base === revFolder) && !e.endsWith('.lock');
  });
  // Check every lock first, so a refusal leaves everything in place.
  for (const e of entries) {
    if (!e.endsWith('.lock')) continue;
    if (revFolder !== null && e !== `${revFolder}.lock`) continue;
    const holder = await lockHolder(join(root, e));
    if (holder.live) throw new LockedError(join(root, e), holder.pid);
  }
  const removed: string[] = [];
  for (const e of targets) {
    await rm(join(root, e), { recursive: true, force: true });
    if (!e.endsWith('.old')) removed.push(join(root, e));
  }
  for (const e of entries)
    if (e.endsWith('.lock') && (revFolder === null || e === `${revFolder}.lock`)) await rm(join(root, e), { force: true });
  await removeIfEmpty(root);
  return removed;
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
 */
export async function acquireLock(file: string): Promise<() => Promise<void>> {
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
