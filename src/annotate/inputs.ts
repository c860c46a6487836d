/**
 * Input resolution: an image file, a folder (optionally recursive), a glob, or a `.txt` list of
 * paths → a sorted list of images, each with the dataset key (`sub/dir/stem`) its outputs are named by.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** File extensions taken as images (lower case). Unsupported ones among them fail at decode and are reported. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.bmp',
  '.heic',
  '.heif',
]);

/** One image to annotate. */
export interface InputImage {
  /** Absolute path of the source file. */
  source: string;
  /**
   * Dataset key: the path relative to its input root (folder or glob base; the bare name for single
   * files and list entries), POSIX separators, no extension. Unique per run, case-insensitively.
   */
  key: string;
  /** The source's extension as written (`.JPG`), used for the copy in `images/`. */
  ext: string;
}

/** A path that was looked at and not annotated, with why. */
export interface IgnoredInput {
  path: string;
  reason: string;
}

/** What {@link resolveInputs} found. */
export interface ResolvedInputs {
  images: InputImage[];
  /** Files without an image extension found in folders or globs (reported, not failures). */
  ignored: IgnoredInput[];
  /** Named paths that do not exist or cannot be read (failures). */
  missing: IgnoredInput[];
}

export interface ResolveOptions {
  /** Descend into subfolders of folder inputs. Default false. */
  recursive?: boolean;
  /** Base for relative paths. Default `process.cwd()`. */
  cwd?: string;
  /** Files under this folder are never inputs (the output dataset, when it lies inside an input folder). */
  exclude?: string;
}

/** Thrown for an input that cannot be used at all (e.g. a glob with no matches is not an error; a bad pattern is). */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

const GLOB_CHARS = /[*?[\]{}]/;

/** Whether a string is a glob pattern (contains `*`, `?`, `[...]` or `{a,b}`). */
export function isGlob(s: string): boolean {
  return GLOB_CHARS.test(s);
}

/**
 * A glob (POSIX separators) → RegExp over relative POSIX paths: `*` and `?` stay within a segment,
 * `**` spans segments, `[...]` classes, `{a,b}` alternatives; dotfiles are not special.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more whole segments; a trailing `**` matches the rest.
        const slash = glob[i + 2] === '/';
        re += slash ? '(?:[^/]*/)*' : '.*';
        i += slash ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) throw new InputError(`glob ${JSON.stringify(glob)}: unclosed [`);
      let body = glob.slice(i + 1, end);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else re += c.replace(/[.+^$()|\\]/g, '\\$&');
  }
  if (braces !== 0) throw new InputError(`glob ${JSON.stringify(glob)}: unclosed {`);
  return new RegExp(`^${re}$`);
}

const isImageFile = (p: string) => IMAGE_EXTENSIONS.has(path.extname(p).toLowerCase());
const toPosix = (p: string) => p.split(path.sep).join('/');
const stripExt = (p: string) => p.slice(0, p.length - path.extname(p).length);

function isInside(child: string, dir: string): boolean {
  const rel = path.relative(dir, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Files under `dir` (sorted, following no symlinked folders), descending when `recursive`. */
async function listFiles(dir: string, recursive: boolean, exclude: string | undefined): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    if (exclude !== undefined && isInside(d, exclude)) return;
    const entries = await fs.readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (recursive) await walk(p);
      } else if (e.isFile() || e.isSymbolicLink()) {
        // A symlink may point at a folder; only files are inputs.
        if (
          e.isSymbolicLink() &&
          !(await fs.stat(p).then(
            (s) => s.isFile(),
            () => false,
          ))
        )
          continue;
        if (exclude === undefined || !isInside(p, exclude)) out.push(p);
      }
    }
  };
  await walk(dir);
  return out;
}

interface Candidate {
  source: string;
  /** Relative name before de-duplication, POSIX, extension kept. */
  rel: string;
}

/**
 * Resolves `data` (one input or several) to images. Order and keys are deterministic: images sorted
 * by key then source; two sources that would share a key (`a/x.jpg` and `b/x.jpg` from a list, or
 * `x.jpg` and `x.png`) keep the name for the first and get `stem_ext` (then `stem_ext_2`, ...) after.
 */
export async function resolveInputs(data: string | readonly string[], options: ResolveOptions = {}): Promise<ResolvedInputs> {
  const cwd = options.cwd ?? process.cwd();
  const exclude = options.exclude === undefined ? undefined : path.resolve(cwd, options.exclude);
  const recursive = options.recursive ?? false;
  const candidates: Candidate[] = [];
  const ignored: IgnoredInput[] = [];
  const missing: IgnoredInput[] = [];

  const addFolder = async (dir: string, rec: boolean) => {
    for (const f of await listFiles(dir, rec, exclude)) {
      if (isImageFile(f)) candidates.push({ source: f, rel: toPosix(path.relative(dir, f)) });
      else ignored.push({ path: f, reason: 'not an image file (extension)' });
    }
  };

  const addOne = async (input: string, base: string, fromList: boolean): Promise<void> => {
    if (!fromList && isGlob(input)) {
      const abs = toPosix(path.resolve(base, input));
      // The folder part before the first segment with a glob character is walked; the rest is matched.
      const segments = abs.split('/');
      const first = segments.findIndex((s) => isGlob(s));
      const root = segments.slice(0, first).join('/') || '/';
      const pattern = segments.slice(first).join('/');
      const re = globToRegExp(pattern);
      const deep = pattern.includes('/') || pattern.includes('**');
      const files = await listFiles(root, deep, exclude).catch(() => [] as string[]);
      for (const f of files) {
        const rel = toPosix(path.relative(root, f));
        if (!re.test(rel)) continue;
        if (isImageFile(f)) candidates.push({ source: f, rel });
        else ignored.push({ path: f, reason: 'not an image file (extension)' });
      }
      return;
    }
    const abs = path.resolve(base, input);
    let stat;
    try {
      stat = await fs.stat(abs);
    } catch {
      missing.push({ path: abs, reason: 'not found' });
      return;
    }
    if (stat.isDirectory()) await addFolder(abs, recursive);
    else if (!fromList && path.extname(abs).toLowerCase() === '.txt') {
      // A list: one path per line, relative to the list's folder; blank lines and # comments skipped.
      const text = await fs.readFile(abs, 'utf8');
      for (const raw of text.split(/\r?\n/)) {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) continue;
        await addOne(line, path.dirname(abs), true);
      }
    } else if (exclude !== undefined && isInside(abs, exclude)) {
      ignored.push({ path: abs, reason: 'inside the output folder' });
    } else {
      // A named file is taken even with an odd extension: the user asked for it; decoding decides.
      candidates.push({ source: abs, rel: path.basename(abs) });
    }
  };

  for (const input of typeof data === 'string' ? [data] : data) await addOne(input, cwd, false);
  return { images: assignKeys(candidates), ignored, missing };
}

function assignKeys(candidates: readonly Candidate[]): InputImage[] {
  // The same file reached twice (a folder and a glob over it) is one input.
  const bySource = new Map<string, Candidate>();
  for (const c of candidates) if (!bySource.has(c.source)) bySource.set(c.source, c);
  const unique = [...bySource.values()].map((c) => ({ ...c, key: stripExt(c.rel), ext: path.extname(c.rel) }));
  unique.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const taken = new Set<string>();
  const out: InputImage[] = [];
  for (const c of unique) {
    let key = c.key;
    if (taken.has(key.toLowerCase())) {
      const base = `${c.key}_${c.ext.replace(/^\./, '').toLowerCase() || 'file'}`;
      key = base;
      for (let n = 2; taken.has(key.toLowerCase()); n++) key = `${base}_${n}`;
    }
    taken.add(key.toLowerCase());
    out.push({ source: c.source, key, ext: c.ext });
  }
  return out;
}
