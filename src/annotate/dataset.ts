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

/**
 * An Ultralytics `data.yaml`: `path` (absolute, as Ultralytics resolves a relative one against its
 * own datasets folder), `train` and `val` (the same folder without a split), `nc`, and `names` as
 * an index → name mapping.
 */
export function dataYamlText(root: string, classes: readonly string[], split: boolean): string {
  const lines = [
    '# Ultralytics dataset written by `florence2 annotate` (Florence-2 auto-annotation).',
    `path: ${yamlScalar(root)}`,
    `train: ${split ? 'images/train' : 'images'}`,
    `val: ${split ? 'images/val' : 'images'}`,
    `nc: ${classes.length}`,
  ];
  if (classes.length === 0) lines.push('names: {}');
  else lines.push('names:', ...classes.map((name, i) => `  ${i}: ${yamlScalar(name)}`));
  return `${lines.join('\n')}\n`;
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
    await put('data.yaml', dataYamlText(ds.root, classes, split));
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
