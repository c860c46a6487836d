/**
 * {@link AutoAnnotator}: Florence-2 auto-annotation of an image set into a dataset Ultralytics can
 * train on (YOLO labels, `data.yaml`), COCO JSON and drawings, resumable and robust to bad images.
 *
 * How a run goes: inputs are resolved and sorted; images are prepared (read, prompts run, answers
 * parsed and filtered) several at a time, their requests pooled into backend calls with several
 * calls in flight; results are committed strictly in input order. Committing in order is what keeps
 * open-set class ids (first seen = lower id) identical between an uninterrupted run and any
 * interrupted-and-resumed one, and makes "done" a prefix of the input plus failures.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import type { GenerationOverrides, LoadOptions } from '../index';
import { ClassMap } from './classes';
import { Dataset, assignSplits, settleSplits, writeDatasetFiles, type DatasetSettings } from './dataset';
import { EmbeddedBackend, createRemoteBackend, resolveModelDir } from './backends';
import { yoloLabelText, type YoloKind } from './formats/yolo';
import { clipPolygon } from './geometry';
import { resolveInputs, type IgnoredInput, type InputImage } from './inputs';
import {
  DETECTION_MODES,
  SEGMENTATION_SOURCES,
  detectionPrompts,
  parseDetections,
  parseRegionPolygons,
  regionSegmentationPrompt,
  selectDetections,
  type Candidate,
  type DetectionMode,
  type PlannedPrompt,
  type SegmentationSource,
} from './prompting';
import { renderVisual } from './visuals';
import type { AnnotationBackend, BackendRequest, BackendResult, ImageRecord, Instance, ImageSize, Split } from './types';

/** Output formats: YOLO boxes, YOLO-seg polygons (implies segmentation), COCO JSON. */
export type OutputFormat = 'yolo' | 'yolo-seg' | 'coco';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['yolo', 'yolo-seg', 'coco'];

/** How the annotator gets a model. */
export interface AutoAnnotatorOptions {
  /**
   * Model folder, or a Hub model name downloaded on first use (see `resolveModelDir`);
   * default `$FLORENCE2_MODEL`. Loaded in process on first use.
   */
  model?: string;
  /**
   * A florence2 server `HOST:PORT` to run on instead of a local model, or a fleet of them:
   * `dns:///NAME:PORT` (every address the name resolves to) or `ipv4:ADDR:PORT,ADDR:PORT`, over
   * which requests spread round-robin (see the client's `loadBalancing`).
   */
  server?: string;
  /** Bearer token for `server`, when it has `--auth-tokens-file`. */
  token?: string;
  /** A ready backend (tests, custom transports); takes precedence over `server` and `model`. */
  backend?: AnnotationBackend;
  /** Options for loading the local model (dtype, devices, resample). */
  load?: LoadOptions;
  /** Generation settings (beams, max new tokens) for every request. */
  generation?: GenerationOverrides;
  /** Environment for model lookup (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** What to annotate and how to write it. */
export interface AnnotateOptions {
  /** An image, a folder, a glob, a `.txt` list of paths, or several of these. */
  data: string | readonly string[];
  /** Output folder; required unless `save` is false. */
  outputDir?: string;
  /** Write the dataset (default true). With false nothing is written and `summary.records` has the results. */
  save?: boolean;
  /** Draw boxes, polygons, labels and scores into `DIR/visuals/`. */
  saveVisuals?: boolean;
  /** Classes to annotate, in id order; without them every object `<OD>` finds is annotated. */
  classes?: readonly string[];
  /** One format or several (`['yolo', 'coco']`); default `yolo`. */
  format?: OutputFormat | readonly OutputFormat[];
  /** How classes are prompted (default `grounding`). */
  mode?: DetectionMode;
  /** Also segment (COCO polygons); implied by `yolo-seg`. */
  segment?: boolean;
  /** Polygon source when segmenting: `region` (default; per detected box) or `referring` (per class). */
  segmentation?: SegmentationSource;
  /** Classes per grounding prompt (long prompts exceed the encoder; default all in one). */
  classesPerPrompt?: number;
  /** Descend into subfolders of folder inputs. */
  recursive?: boolean;
  /** Train fraction in (0, 1): split into `images/train` and `images/val`. */
  split?: number;
  /** Symlink images into the dataset instead of copying. */
  link?: boolean;
  /** Drop objects scored below this (0..1). */
  minScore?: number;
  /** Drop boxes narrower or lower than this many pixels. */
  minBoxSize?: number;
  /** Redo everything (empties the output's annotate files first) instead of resuming. */
  overwrite?: boolean;
  /** Backend calls in flight (default the backend's preference: 2 in process, 8 on a server). */
  concurrency?: number;
  /** Requests per backend call (default the backend's preference: 4 in process, 1 on a server, so `concurrency` counts requests). */
  batchSize?: number;
  /** Aborting stops the run after the image being committed; the summary says `interrupted`. */
  signal?: AbortSignal;
  /** Called after each image is committed (annotated, skipped or failed). */
  onProgress?: (progress: AnnotationProgress) => void;
  /** Base for relative paths (default `process.cwd()`). */
  cwd?: string;
}

/** Progress after an image. */
export interface AnnotationProgress {
  done: number;
  total: number;
  annotated: number;
  skipped: number;
  failed: number;
  /** Source path of the image just committed. */
  source: string;
  elapsedMs: number;
}

/** An image that could not be annotated. */
export interface AnnotationFailure {
  path: string;
  error: string;
}

/** The outcome of a run. */
export interface AnnotationSummary {
  /** Absolute output folder, or null when not saving. */
  outputDir: string | null;
  /** Images found in the inputs. */
  images: number;
  /** Annotated in this run. */
  annotated: number;
  /** Already done by an earlier run (resume). */
  skipped: number;
  /** Failed in this run (also in `failures`). */
  failed: number;
  /** True when the run was aborted before every image was committed. */
  interrupted: boolean;
  /** Objects in the whole dataset (earlier runs' images included). */
  objects: number;
  /** Objects per class name in the whole dataset, every class listed. */
  objectsPerClass: Record<string, number>;
  /** Dataset images without objects (empty label files). */
  emptyImages: number;
  /** This run: phrases that matched none of the classes. */
  unmatched: number;
  /** This run: objects dropped by `minScore` / `minBoxSize` or empty after clipping. */
  filtered: number;
  /** Class names in id order. */
  classes: string[];
  failures: AnnotationFailure[];
  /** Files in folder or glob inputs that are not images (not failures). */
  ignored: IgnoredInput[];
  /** Dataset-level files written (relative to the output folder). */
  files: string[];
  elapsedMs: number;
  /** Images annotated in this run per second. */
  imagesPerSecond: number;
  /** With `save: false`: every image's result, in input order. */
  records?: ImageRecord[];
}

/** Invalid options (the CLI maps this to exit code 2). */
export class AnnotateUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnnotateUsageError';
  }
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Pools requests from many images into backend calls of up to `batchSize` requests, with up to
 * `concurrency` calls in flight; a request queued while every slot is busy waits for the next free
 * one, which is how several images end up in one batch.
 */
class RequestBatcher {
  private readonly queue: Array<{ req: BackendRequest; resolve: (r: BackendResult) => void; reject: (e: Error) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly backend: AnnotationBackend,
    private readonly batchSize: number,
    private readonly concurrency: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  submit(req: BackendRequest): Promise<BackendResult> {
    if (this.signal?.aborted) return Promise.reject(new Error('aborted'));
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      // Dispatch on the next macrotask so requests submitted in the same tick share a call.
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchSize);
      if (this.signal?.aborted) {
        for (const b of batch) b.reject(new Error('aborted'));
        continue;
      }
      this.inFlight++;
      this.backend
        .run(
          batch.map((b) => b.req),
          { signal: this.signal },
        )
        .then(
          (results) => {
            batch.forEach((b, i) => {
              const r = results[i];
              if (r === undefined) b.reject(new Error('the backend returned fewer results than requests'));
              else if (r instanceof Error) b.reject(r);
              else b.resolve(r);
            });
          },
          (err: unknown) => {
            for (const b of batch) b.reject(err instanceof Error ? err : new Error(String(err)));
          },
        )
        .finally(() => {
          this.inFlight--;
          this.dispatch();
        });
    }
  }
}

/** An image's state on its way to commit. */
type Outcome =
  | { kind: 'skip'; item: InputImage; record: ImageRecord }
  | { kind: 'fail'; item: InputImage; error: string }
  | { kind: 'done'; item: InputImage; bytes: Buffer; size: ImageSize; candidates: Candidate[]; unmatched: number; filtered: number };

interface RunConfig {
  classes: ClassMap;
  mode: DetectionMode;
  segmentation: SegmentationSource | null;
  classesPerPrompt: number | undefined;
  minScore: number;
  minBoxSize: number;
  yolo: YoloKind | null;
  coco: boolean;
  visuals: boolean;
  link: boolean;
  splits: Map<string, 'train' | 'val'> | null;
}

/**
 * Auto-annotates images with Florence-2, modelled on Ultralytics' `AutoAnnotator`:
 *
 * ```ts
 * const annotator = new AutoAnnotator({ model: '/models/Florence-2-base-ft' });
 * const summary = await annotator.annotate({ data: 'photos/', outputDir: 'dataset', classes: ['car', 'person'], saveVisuals: true });
 * await annotator.close();
 * ```
 */
export class AutoAnnotator {
  private backendPromise: Promise<AnnotationBackend> | null = null;
  private readonly ownsBackend: boolean;

  constructor(private readonly options: AutoAnnotatorOptions = {}) {
    this.ownsBackend = options.backend === undefined;
    if (options.backend !== undefined) this.backendPromise = Promise.resolve(options.backend);
  }

  /** The backend, created on first use (loading the local model, or connecting to the server). */
  backend(): Promise<AnnotationBackend> {
    if (this.backendPromise === null) {
      const o = this.options;
      this.backendPromise =
        o.server !== undefined
          ? createRemoteBackend(o.server, { generation: o.generation, ...(o.token !== undefined ? { token: o.token } : {}) })
          : resolveModelDir(o.model, o.env ?? process.env, process.cwd(), o.load?.dtype ?? 'auto').then((dir) =>
              // like serve: the best variant the folder has unless a dtype is given
              EmbeddedBackend.load(dir, { generation: o.generation, load: { ...o.load, dtype: o.load?.dtype ?? 'auto' } }),
            );
      // A failed load must not stay cached as a rejected promise.
      this.backendPromise.catch(() => {
        this.backendPromise = null;
      });
    }
    return this.backendPromise;
  }

  /** Releases a backend this annotator created (a given backend is the caller's to close). */
  async close(): Promise<void> {
    const p = this.backendPromise;
    this.backendPromise = null;
    if (p !== null && this.ownsBackend) await (await p.catch(() => null))?.close?.();
  }

  /** Annotates `options.data`; see {@link AnnotateOptions}. Rejects only for usage or output-folder problems. */
  async annotate(options: AnnotateOptions): Promise<AnnotationSummary> {
    const t0 = performance.now();
    const cwd = options.cwd ?? process.cwd();
    const save = options.save ?? true;
    const formats = new Set<string>(typeof options.format === 'string' ? [options.format] : (options.format ?? ['yolo']));
    for (const f of formats)
      if (!(OUTPUT_FORMATS as readonly string[]).includes(f))
        throw new AnnotateUsageError(`unknown format ${JSON.stringify(f)} (use ${OUTPUT_FORMATS.join(', ')})`);
    if (formats.size === 0) throw new AnnotateUsageError('no output format');
    if (formats.has('yolo') && formats.has('yolo-seg'))
      throw new AnnotateUsageError('formats yolo and yolo-seg both write labels/; choose one');
    const mode = options.mode ?? 'grounding';
    if (!DETECTION_MODES.includes(mode))
      throw new AnnotateUsageError(`unknown mode ${JSON.stringify(mode)} (use ${DETECTION_MODES.join(', ')})`);
    const segment = formats.has('yolo-seg') || options.segment === true;
    const segSource = segment ? (options.segmentation ?? 'region') : null;
    if (segSource !== null && !SEGMENTATION_SOURCES.includes(segSource))
      throw new AnnotateUsageError(`unknown segmentation source ${JSON.stringify(segSource)} (use ${SEGMENTATION_SOURCES.join(', ')})`);
    const given = options.classes?.map((c) => c.trim()).filter((c) => c !== '');
    if (segSource === 'referring' && (given === undefined || given.length === 0))
      throw new AnnotateUsageError('segmentation from referring expressions needs classes');
    const split = options.split;
    if (split !== undefined && !(split > 0 && split < 1))
      throw new AnnotateUsageError(`split must be a train fraction in (0, 1), got ${split}`);
    const minScore = options.minScore ?? 0;
    const minBoxSize = options.minBoxSize ?? 0;
    if (!(minScore >= 0 && minScore <= 1)) throw new AnnotateUsageError(`minScore must be in [0, 1], got ${minScore}`);
    if (!(minBoxSize >= 0)) throw new AnnotateUsageError(`minBoxSize must be >= 0, got ${minBoxSize}`);
    if (save && (options.outputDir === undefined || options.outputDir === ''))
      throw new AnnotateUsageError('outputDir is required when saving');
    let classes: ClassMap;
    try {
      classes = given !== undefined && given.length > 0 ? new ClassMap(given, true) : new ClassMap();
    } catch (err) {
      throw new AnnotateUsageError(errorText(err));
    }

    const outputDir = save ? path.resolve(cwd, options.outputDir!) : null;
    const inputs = await resolveInputs(options.data, { recursive: options.recursive, cwd, exclude: outputDir ?? undefined });
    const settings: DatasetSettings = {
      classes: classes.fixed ? [...classes.names] : null,
      mode: classes.fixed ? mode : 'od',
      segmentation: segSource,
      classesPerPrompt: classes.fixed && mode === 'grounding' ? (options.classesPerPrompt ?? null) : null,
      minScore,
      minBoxSize,
      split: split ?? null,
    };
    // The backend first: when it cannot be had (no model, no server) the output folder is left untouched.
    const backend = await this.backend();
    const ds = outputDir === null ? null : await Dataset.open(outputDir, settings, { overwrite: options.overwrite });
    if (ds !== null && !classes.fixed) classes = new ClassMap(ds.classes);

    const cfg: RunConfig = {
      classes,
      mode,
      segmentation: segSource,
      classesPerPrompt: options.classesPerPrompt,
      minScore,
      minBoxSize,
      yolo: formats.has('yolo-seg') ? 'segment' : formats.has('yolo') ? 'detect' : null,
      coco: formats.has('coco'),
      visuals: options.saveVisuals === true && save,
      link: options.link === true,
      splits:
        split === undefined
          ? null
          : assignSplits(
              inputs.images.map((i) => i.key),
              split,
            ),
    };
    const batchSize = Math.max(1, options.batchSize ?? backend.preferredBatchSize ?? 4);
    const concurrency = Math.max(1, options.concurrency ?? backend.preferredConcurrency ?? 2);
    const batcher = new RequestBatcher(backend, batchSize, concurrency, options.signal);

    const failures: AnnotationFailure[] = inputs.missing.map((m) => ({ path: m.path, error: m.reason }));
    const records: ImageRecord[] = [];
    let annotated = 0;
    let skipped = 0;
    let unmatched = 0;
    let filtered = 0;
    let interrupted = false;
    const items = inputs.images;
    // Images prepared ahead of the commit point: enough to keep every call slot full.
    const window = Math.max(4, batchSize * concurrency * 2);
    const pending = new Map<number, Promise<Outcome>>();
    let next = 0;
    for (let i = 0; i < items.length; i++) {
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
      while (next < items.length && next < i + window) {
        pending.set(next, this.prepare(items[next], ds, cfg, batcher));
        next++;
      }
      const outcome = await pending.get(i)!;
      pending.delete(i);
      // An abort while this image was being prepared may have failed it; do not record that as a failure.
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
      try {
        if (outcome.kind === 'fail') failures.push({ path: outcome.item.source, error: outcome.error });
        else if (outcome.kind === 'skip') {
          if (ds !== null) await this.restore(outcome.record, ds, cfg);
          skipped++;
        } else {
          const rec = await this.commit(outcome, ds, cfg);
          if (ds === null) records.push(rec);
          annotated++;
          unmatched += outcome.unmatched;
          filtered += outcome.filtered;
        }
      } catch (err) {
        // A write failure for one image (e.g. its copy cannot be made) fails that image only.
        failures.push({ path: outcome.item.source, error: errorText(err) });
      }
      options.onProgress?.({
        done: i + 1,
        total: items.length,
        annotated,
        skipped,
        failed: failures.length - inputs.missing.length,
        source: outcome.item.source,
        elapsedMs: performance.now() - t0,
      });
    }
    // Nothing may touch the backend or the folder after we return.
    await Promise.allSettled(pending.values());

    // The split is over the images annotated: failures take no share of either subset.
    let all = ds === null ? records : await ds.allRecords();
    if (split !== undefined) {
      if (ds !== null) all = await settleSplits(ds, all, split);
      else {
        const subsets = assignSplits(
          all.map((r) => r.key),
          split,
        );
        for (const r of all) r.split = subsets.get(r.key)!;
      }
    }
    const files = ds === null ? [] : await writeDatasetFiles(ds, all, { yolo: cfg.yolo, coco: cfg.coco, segmentation: segSource !== null });
    if (ds !== null) await ds.closeTmp();
    const names = ds === null ? [...classes.names] : [...ds.classes];
    const perClass: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    let objects = 0;
    let emptyImages = 0;
    for (const r of all) {
      if (r.instances.length === 0) emptyImages++;
      for (const inst of r.instances) {
        objects++;
        const n = names[inst.classId] ?? inst.label;
        perClass[n] = (perClass[n] ?? 0) + 1;
      }
    }
    const elapsedMs = performance.now() - t0;
    const summary: AnnotationSummary = {
      outputDir,
      images: items.length,
      annotated,
      skipped,
      failed: failures.length,
      interrupted,
      objects,
      objectsPerClass: perClass,
      emptyImages,
      unmatched,
      filtered,
      classes: names,
      failures,
      ignored: inputs.ignored,
      files,
      elapsedMs,
      imagesPerSecond: elapsedMs > 0 ? annotated / (elapsedMs / 1000) : 0,
    };
    if (ds === null) summary.records = records;
    return summary;
  }

  /** Reads, runs and filters one image; never rejects (a problem becomes a `fail` outcome). */
  private async prepare(item: InputImage, ds: Dataset | null, cfg: RunConfig, batcher: RequestBatcher): Promise<Outcome> {
    try {
      if (ds !== null) {
        const rec = await ds.readRecord(item.key);
        if (rec !== null) {
          if (rec.source === item.source) return { kind: 'skip', item, record: rec };
          return { kind: 'fail', item, error: `its output name ${JSON.stringify(item.key)} is taken by ${rec.source} from an earlier run` };
        }
      }
      const bytes = await fs.readFile(item.source);
      // Header check first: a non-image never reaches the model (where it would fail a whole batch).
      await sharp(bytes)
        .metadata()
        .catch((err: unknown) => {
          throw new Error(`not a readable image (${errorText(err)})`);
        });
      const ask = (p: PlannedPrompt) => batcher.submit({ image: bytes, task: p.task, text: p.text, region: p.region });
      const prompts = detectionPrompts(cfg.classes.fixed ? cfg.classes : null, cfg.mode, {
        segmentation: cfg.segmentation,
        classesPerPrompt: cfg.classesPerPrompt,
      });
      const answers = await Promise.all(prompts.map(ask));
      const size = answers[0].imageSize;
      const detections = prompts.flatMap((p, i) => parseDetections(p, answers[i].result));
      const sel = selectDetections(detections, cfg.classes.fixed ? cfg.classes : null, size, {
        minScore: cfg.minScore,
        minBoxSize: cfg.minBoxSize,
      });
      if (cfg.segmentation === 'region' && sel.kept.length > 0) {
        const segs = await Promise.all(sel.kept.map((c) => ask(regionSegmentationPrompt(c.box))));
        sel.kept.forEach((c, i) => {
          c.polygons = parseRegionPolygons(segs[i].result)
            .map((p) => clipPolygon(p, size))
            .filter((p): p is number[] => p !== null);
        });
      }
      return { kind: 'done', item, bytes, size, candidates: sel.kept, unmatched: sel.unmatched, filtered: sel.filtered };
    } catch (err) {
      return { kind: 'fail', item, error: errorText(err) };
    }
  }

  /** Writes a prepared image: classes (open set), image copy, label, visual, then its record. */
  private async commit(o: Extract<Outcome, { kind: 'done' }>, ds: Dataset | null, cfg: RunConfig): Promise<ImageRecord> {
    const before = cfg.classes.size;
    const instances: Instance[] = [];
    for (const c of o.candidates) {
      const classId = c.classId ?? cfg.classes.resolve(c.label);
      if (classId < 0) continue;
      const inst: Instance = { classId, label: c.label, score: c.score, box: c.box };
      if (cfg.segmentation !== null) inst.polygons = c.polygons ?? [];
      instances.push(inst);
    }
    const split: Split = cfg.splits?.get(o.item.key) ?? null;
    const record: ImageRecord = {
      key: o.item.key,
      source: o.item.source,
      image: ds === null ? o.item.source : ds.imagePath(o.item.key, o.item.ext, split),
      split,
      width: o.size.width,
      height: o.size.height,
      instances,
    };
    if (ds === null) return record;
    // New class ids are persisted before any file uses them.
    if (cfg.classes.size !== before) await ds.saveClasses(cfg.classes.names);
    await ds.placeImage(o.item.source, record.image, cfg.link);
    if (cfg.yolo !== null) await ds.writeFile(ds.labelPath(record.key, split), yoloLabelText(record, cfg.yolo));
    if (cfg.visuals) {
      const v = await renderVisual(o.bytes, record, ds.classes);
      await ds.writeFile(ds.visualPath(record.key, split, v.ext), v.data);
    }
    await ds.writeRecord(record);
    return record;
  }

  /** For an image done earlier: recreates any of its files that are missing (e.g. visuals asked for only now). */
  private async restore(rec: ImageRecord, ds: Dataset, cfg: RunConfig): Promise<void> {
    if (!(await ds.exists(rec.image))) await ds.placeImage(rec.source, rec.image, cfg.link);
    if (cfg.yolo !== null) {
      const rel = ds.labelPath(rec.key, rec.split);
      if (!(await ds.exists(rel))) await ds.writeFile(rel, yoloLabelText(rec, cfg.yolo));
    }
    if (
      cfg.visuals &&
      !(await ds.exists(ds.visualPath(rec.key, rec.split, '.jpg'))) &&
      !(await ds.exists(ds.visualPath(rec.key, rec.split, '.png')))
    ) {
      const v = await renderVisual(await fs.readFile(rec.source), rec, ds.classes);
      await ds.writeFile(ds.visualPath(rec.key, rec.split, v.ext), v.data);
    }
  }
}
