/**
 * The output dataset on disk: layout, atomic writes, the resume state, the train/val split and the
 * dataset-level files (`data.yaml`, `classes.txt`, COCO JSON).
 *
 * ```
 * DIR/images[/train|/val]/<key><ext>     copies (or symlinks) of the sources
 * DIR/labels[/train|/val]/<key>.txt      YOLO labels (empty file: no objects)
 * DIR/visuals[/train|/val]/<key>.jpg|png drawings, with --visuals
 * DIR/annotations/instances[_train|_val].json  COCO, with format coco
 * DIR/data.yaml  DIR/classes.txt
 * DIR/.annotate/state.json               settings and class list (ids are positions)
 * DIR/.annotate/records/<key>.json       one per finished image: the commit marker for resume
 * DIR/.annotate/tmp/                     files being written, renamed into place when complete
 * ```
 *
 * Every file is written to `.annotate/tmp` and renamed into place, so an interrupted run leaves
 * either the old file or the new one, never a partial one. An image counts as done once its record
 * exists; the record is written last, after its image, label and visual.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { buildCoco, cocoJsonText } from './formats/coco';
import { yoloLabelText, type YoloKind } from './formats/yolo';
import type { ImageRecord, Split } from './types';

/** Folder (inside the output) holding the resume state. */
export const STATE_DIR = '.annotate';
const STATE_VERSION = 1;
/** Paths the annotator owns inside an output folder; `overwrite` removes exactly these. */
const MANAGED = ['images', 'labels', 'visuals', 'annotations', 'data.yaml', 'classes.txt', STATE_DIR];

/** Settings that change what is written for an image; a resume must use the same ones. */
export interface DatasetSettings {
  /** The user's classes, or null for open-set `<OD>` classes. */
  classes: string[] | null;
  mode: string;
  segmentation: string | null;
  classesPerPrompt: number | null;
  minScore: number;
  minBoxSize: number;
  /** Train fraction, or null for no split. */
  split: number | null;
}

interface StateFile {
  version: number;
  settings: DatasetSettings;
  /** Class names in id order. */
  classes: string[];
}

/** The output folder cannot be used as asked (not ours, or made with other settings). */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

const toPosix = (p: string) => p.split(path.sep).join('/');

/**
 * A YAML scalar: plain when that is unambiguous (so `names` read naturally), else double-quoted
 * with JSON escapes, which YAML's double-quoted style accepts.
 */
export function yamlScalar(s: string): string {
  const plain = /^[A-Za-z_/][A-Za-z0-9 _./()-]*$/.test(s) && !s.endsWith(' ') && !/^(true|false|yes|no|on|off|null|y|n)$/i.test(s);
  return plain ? s : JSON.stringify(s);
}

/** The image folders `data.yaml` names for training and validation, relative to the dataset root. */
export interface YamlFolders {
  train: string;
  val: string;
}

/**
 * An Ultralytics `data.yaml`: `path` (absolute, as Ultralytics resolves a relative one against its
 * own datasets folder), `train` and `val` (see {@link yamlFolders}), `nc`, and `names` as an
 * index → name mapping.
 */
export function dataYamlText(root: string, classes: readonly string[], folders: YamlFolders): string {
  const lines = [
    '# Ultralytics dataset written by `florence2 annotate` (Florence-2 auto-annotation).',
    `path: ${yamlScalar(root)}`,
    `train: ${folders.train}`,
    `val: ${folders.val}`,
    `nc: ${classes.length}`,
  ];
  if (classes.length === 0) lines.push('names: {}');
  else lines.push('names:', ...classes.map((name, i) => `  ${i}: ${yamlScalar(name)}`));
  return `${lines.join('\n')}\n`;
}

/**
 * The folders `data.yaml` names: `images` without a split; with one, `images/train` and
 * `images/val`, except that a subset without images is replaced by the other (one annotated image
 * cannot make two subsets, and Ultralytics refuses a folder that does not exist). With no image at
 * all, `images/train` for both (the caller creates it).
 */
export function yamlFolders(records: readonly Pick<ImageRecord, 'split'>[], split: boolean): YamlFolders {
  if (!split) return { train: 'images', val: 'images' };
  const has = (s: Split) => records.some((r) => r.split === s);
  const train = has('train') || !has('val') ? 'images/train' : 'images/val';
  const val = has('val') ? 'images/val' : train;
  return { train, val };
}

/**
 * Train/val assignment for a split: keys ordered by a hash of the key (a deterministic shuffle, so
 * neighbouring frames do not all land in one subset), the first `round(n * ratio)` train, the rest
 * val, keeping at least one of each when there are two or more images.
 */
export function assignSplits(keys: readonly string[], ratio: number): Map<string, 'train' | 'val'> {
  const hash = (k: string) => createHash('sha256').update(k).digest('hex');
  const order = [...keys].map((k) => ({ k, h: hash(k) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : a.k < b.k ? -1 : 1));
  const n = order.length;
  let train = Math.round(n * ratio);
  if (n >= 2) train = Math.min(Math.max(train, 1), n - 1);
  const out = new Map<string, 'train' | 'val'>();
  order.forEach(({ k }, i) => out.set(k, i < train ? 'train' : 'val'));
  return out;
}

/**
 * Puts every record in the subset a split over `records` (the images annotated, in this run and
 * earlier ones) gives it. Images are placed in their provisional subset when committed (a split over
 * every input, so usually nothing moves); an image that failed, or one fixed since, shifts the
 * split, and the records it moves are moved here: their files are renamed into the new subset, then
 * the record is rewritten (the commit point), then any copy of its files left in the other subset is
 * removed. Each step is idempotent, so a run interrupted anywhere in this is settled by the next one
 * (a resume first restores whatever files a record says it has).
 */
export async function settleSplits(ds: Dataset, records: readonly ImageRecord[], ratio: number): Promise<ImageRecord[]> {
  const subsets = assignSplits(
    records.map((r) => r.key),
    ratio,
  );
  const settled: ImageRecord[] = [];
  for (const rec of records) {
    const subset = subsets.get(rec.key)!;
    if (rec.split === subset) {
      settled.push(rec);
      continue;
    }
    const moved: ImageRecord = { ...rec, split: subset, image: ds.imagePath(rec.key, path.extname(rec.image), subset) };
    const to = ds.filesOf(moved);
    for (const [i, from] of ds.filesOf(rec).entries()) await ds.move(from, to[i]);
    await ds.writeRecord(moved);
    settled.push(moved);
  }
  for (const rec of settled) {
    const other: ImageRecord = { ...rec, split: rec.split === 'train' ? 'val' : 'train' };
    other.image = ds.imagePath(rec.key, path.extname(rec.image), other.split);
    for (const rel of ds.filesOf(other)) await ds.remove(rel);
  }
  return settled;
}

function settingsDiff(a: DatasetSettings, b: DatasetSettings): (keyof DatasetSettings)[] {
  return (Object.keys(a) as (keyof DatasetSettings)[]).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/** An opened output folder. */
export class Dataset {
  private counter = 0;
  private readonly tmpDir: string;

  private constructor(
    /** Absolute output folder. */
    readonly root: string,
    readonly settings: DatasetSettings,
    private classList: string[],
  ) {
    this.tmpDir = path.join(root, STATE_DIR, 'tmp');
  }

  /**
   * Opens (creating) `outputDir` for these settings. An existing annotate output is resumed when its
   * settings match, and refused otherwise; with `overwrite` it is emptied first. A non-empty folder
   * that is not an annotate output is refused either way, so nothing of the user's is ever deleted.
   */
  static async open(outputDir: string, settings: DatasetSettings, options: { overwrite?: boolean } = {}): Promise<Dataset> {
    const root = path.resolve(outputDir);
    await fs.mkdir(root, { recursive: true });
    const statePath = path.join(root, STATE_DIR, 'state.json');
    let state: StateFile | null = null;
    try {
      state = JSON.parse(await fs.readFile(statePath, 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new DatasetError(`${statePath} is unreadable (${(err as Error).message}); use another --output folder`);
    }
    if (state === null) {
      const entries = (await fs.readdir(root)).filter((n) => !n.startsWith('.'));
      if (entries.length > 0) {
        throw new DatasetError(
          `${root} is not empty and is not a florence2 annotate output (no ${STATE_DIR}/state.json); choose an empty or new folder`,
        );
      }
    } else if (options.overwrite) {
      for (const name of MANAGED) await fs.rm(path.join(root, name), { recursive: true, force: true });
      state = null;
    } else {
      if (state.version !== STATE_VERSION)
        throw new DatasetError(`${root} was written by another version of florence2 annotate; use --overwrite or another folder`);
      const diff = settingsDiff(settings, state.settings);
      if (diff.length > 0) {
        const show = (s: DatasetSettings) => diff.map((k) => `${k}=${JSON.stringify(s[k])}`).join(', ');
        throw new DatasetError(
          `${root} was annotated with other settings (${show(state.settings)}; now ${show(settings)}); resume with the same settings, or use --overwrite`,
        );
      }
    }
    const ds = new Dataset(root, settings, state?.classes ?? settings.classes ?? []);
    // Leftovers of an interrupted run: files that were never renamed into place.
    await fs.rm(ds.tmpDir, { recursive: true, force: true });
    await fs.mkdir(ds.tmpDir, { recursive: true });
    if (state === null) await ds.saveClasses(ds.classList);
    return ds;
  }

  /** Class names in id order, as persisted. */
  get classes(): readonly string[] {
    return this.classList;
  }

  /** Persists the class list (before any label that uses a new id is written). */
  async saveClasses(classes: readonly string[]): Promise<void> {
    this.classList = [...classes];
    const state: StateFile = { version: STATE_VERSION, settings: this.settings, classes: this.classList };
    await this.writeFile(path.join(STATE_DIR, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  }

  /** Relative path of an image's copy. */
  imagePath(key: string, ext: string, split: Split): string {
    return toPosix(path.join('images', split ?? '', `${key}${ext}`));
  }

  /** Relative path of an image's YOLO label file. */
  labelPath(key: string, split: Split): string {
    return toPosix(path.join('labels', split ?? '', `${key}.txt`));
  }

  /** Relative path of an image's drawing. */
  visualPath(key: string, split: Split, ext: string): string {
    return toPosix(path.join('visuals', split ?? '', `${key}${ext}`));
  }

  /** Every file an image may have in the dataset besides its record: the copy, the label and either drawing. */
  filesOf(rec: Pick<ImageRecord, 'key' | 'image' | 'split'>): string[] {
    return [
      rec.image,
      this.labelPath(rec.key, rec.split),
      this.visualPath(rec.key, rec.split, '.jpg'),
      this.visualPath(rec.key, rec.split, '.png'),
    ];
  }

  /** Renames `from` to `to` (replacing it); nothing when `from` does not exist. */
  async move(from: string, to: string): Promise<void> {
    const target = path.join(this.root, to);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(path.join(this.root, from), target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Removes a file (or symlink) if it is there. */
  async remove(rel: string): Promise<void> {
    await fs.rm(path.join(this.root, rel), { force: true });
  }

  private recordPath(key: string): string {
    return path.join(STATE_DIR, 'records', `${key}.json`);
  }

  /** The record of a finished image, or null. */
  async readRecord(key: string): Promise<ImageRecord | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.root, this.recordPath(key)), 'utf8')) as ImageRecord;
    } catch {
      return null;
    }
  }

  /** Marks an image done. Call after its other files are written. */
  async writeRecord(record: ImageRecord): Promise<void> {
    await this.writeFile(this.recordPath(record.key), `${JSON.stringify(record)}\n`);
  }

  /** Every finished image's record, sorted by key. */
  async allRecords(): Promise<ImageRecord[]> {
    const dir = path.join(this.root, STATE_DIR, 'records');
    const out: ImageRecord[] = [];
    const walk = async (d: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name.endsWith('.json')) {
          try {
            out.push(JSON.parse(await fs.readFile(p, 'utf8')) as ImageRecord);
          } catch {
            // Cannot happen with atomic writes unless edited by hand; such an image is redone.
          }
        }
      }
    };
    await walk(dir);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Whether a relative path exists (a dangling symlink counts as missing). */
  async exists(rel: string): Promise<boolean> {
    return fs.stat(path.join(this.root, rel)).then(
      () => true,
      () => false,
    );
  }

  private tmpName(): string {
    return path.join(this.tmpDir, `${process.pid}-${++this.counter}-${randomBytes(4).toString('hex')}`);
  }

  private async place(tmp: string, rel: string): Promise<void> {
    const target = path.join(this.root, rel);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(tmp, target);
  }

  /** Writes a file atomically (temporary file, fsync, rename). */
  async writeFile(rel: string, data: string | Uint8Array): Promise<void> {
    const tmp = this.tmpName();
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.place(tmp, rel);
  }

  /** Copies (or symlinks, with `link`) a source image to `rel`, atomically. */
  async placeImage(source: string, rel: string, link: boolean): Promise<void> {
    const tmp = this.tmpName();
    if (link) await fs.symlink(source, tmp);
    else {
      await fs.copyFile(source, tmp);
      const fh = await fs.open(tmp, 'r+');
      await fh.sync().finally(() => fh.close());
    }
    await this.place(tmp, rel);
  }

  /** Removes the temporary folder (end of a run). */
  async closeTmp(): Promise<void> {
    await fs.rm(this.tmpDir, { recursive: true, force: true });
  }
}

/** Which dataset-level files to write. */
export interface FinalFiles {
  /** YOLO label kind when labels are written (then also `data.yaml`). */
  yolo: YoloKind | null;
  coco: boolean;
  /** COCO `segmentation` from the instances' polygons. */
  segmentation: boolean;
}

/**
 * Writes `classes.txt`, `data.yaml` (with YOLO formats) and the COCO files from all records, and
 * any label file that is missing. Returns the relative paths written.
 */
export async function writeDatasetFiles(ds: Dataset, records: readonly ImageRecord[], files: FinalFiles): Promise<string[]> {
  const written: string[] = [];
  const classes = ds.classes;
  const split = ds.settings.split !== null;
  const put = async (rel: string, text: string) => {
    await ds.writeFile(rel, text);
    written.push(rel);
  };
  await put('classes.txt', classes.length === 0 ? '' : `${classes.join('\n')}\n`);
  if (files.yolo !== null) {
    for (const rec of records) {
      const rel = ds.labelPath(rec.key, rec.split);
      if (!(await ds.exists(rel))) await ds.writeFile(rel, yoloLabelText(rec, files.yolo));
    }
    const folders = yamlFolders(records, split);
    // Named folders exist even when empty (no image annotated at all), so the file never points nowhere.
    for (const dir of new Set([folders.train, folders.val])) await fs.mkdir(path.join(ds.root, dir), { recursive: true });
    await put('data.yaml', dataYamlText(ds.root, classes, folders));
  }
  if (files.coco) {
    const subsets: Array<[string, Split]> = split
      ? [
          ['instances_train.json', 'train'],
          ['instances_val.json', 'val'],
        ]
      : [['instances.json', null]];
    for (const [name, subset] of subsets) {
      const recs = records.filter((r) => (r.split ?? null) === subset);
      const imageRoot = subset === null ? 'images/' : `images/${subset}/`;
      await put(`annotations/${name}`, cocoJsonText(buildCoco(recs, classes, { segmentation: files.segmentation, imageRoot })));
    }
  }
  return written;
}
