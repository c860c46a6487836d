/**
 * Which Florence-2 prompts annotate an image, and how their answers become detections.
 *
 * - No classes: `<OD>`; every label becomes (or joins) a class.
 * - Classes, mode `grounding` (default): `<CAPTION_TO_PHRASE_GROUNDING>` with the classes joined by
 *   `<and>` (in chunks of `classesPerPrompt`); returned phrases are mapped back to the classes.
 * - Classes, mode `od-filter`: `<OD>`, keeping the labels that map to a class.
 * - Classes, mode `open-vocabulary`: one `<OPEN_VOCABULARY_DETECTION>` per class; everything it
 *   returns belongs to that class.
 * - Segmentation from `referring`: one `<REFERRING_EXPRESSION_SEGMENTATION>` per class instead of
 *   detection; from `region`: detection as above, then `<REGION_TO_SEGMENTATION>` per kept box.
 */
import type { ScoredPostProcessResult } from '../florence/postprocess';
import type { TaskToken } from 'florence2-client/catalogue';
import type { PixelRegion } from '../florence/geometry';
import { type ClassMap } from './classes';
import { boxOfPolygons, clipBox, clipPolygon } from './geometry';
import type { BoxTuple, ImageSize } from './types';

/** How classes are turned into prompts. */
export type DetectionMode = 'grounding' | 'od-filter' | 'open-vocabulary';
export const DETECTION_MODES: readonly DetectionMode[] = ['grounding', 'od-filter', 'open-vocabulary'];

/** Where segmentation polygons come from. */
export type SegmentationSource = 'region' | 'referring';
export const SEGMENTATION_SOURCES: readonly SegmentationSource[] = ['region', 'referring'];

/** A request to make for an image (the image itself is added by the annotator). */
export interface PlannedPrompt {
  task: TaskToken;
  text?: string;
  region?: PixelRegion;
  /** For per-class prompts: every instance of the answer belongs to this class. */
  classId?: number;
}

/** A found object before class mapping and filtering. */
export interface Detection {
  /** The model's phrase (for per-class prompts, the class prompt). */
  label: string;
  /** Known class (per-class prompts); otherwise mapped from `label`. */
  classId?: number;
  score: number;
  box: BoxTuple;
  polygons?: number[][];
}

/** The prompts that find objects in an image. */
export function detectionPrompts(
  classes: ClassMap | null,
  mode: DetectionMode,
  options: { segmentation?: SegmentationSource | null; classesPerPrompt?: number } = {},
): PlannedPrompt[] {
  if (classes === null || classes.size === 0) {
    if (options.segmentation === 'referring') throw new RangeError('referring-expression segmentation needs classes');
    return [{ task: '<OD>' }];
  }
  const names = classes.names;
  if (options.segmentation === 'referring') {
    return names.map((text, classId) => ({ task: '<REFERRING_EXPRESSION_SEGMENTATION>', text, classId }));
  }
  switch (mode) {
    case 'od-filter':
      return [{ task: '<OD>' }];
    case 'open-vocabulary':
      return names.map((text, classId) => ({ task: '<OPEN_VOCABULARY_DETECTION>', text, classId }));
    case 'grounding': {
      const per = options.classesPerPrompt && options.classesPerPrompt > 0 ? options.classesPerPrompt : names.length;
      const out: PlannedPrompt[] = [];
      for (let i = 0; i < names.length; i += per)
        out.push({ task: '<CAPTION_TO_PHRASE_GROUNDING>', text: names.slice(i, i + per).join('<and>') });
      return out;
    }
  }
}

/** The region-segmentation prompt for a detected box. */
export function regionSegmentationPrompt(box: BoxTuple): PlannedPrompt {
  return { task: '<REGION_TO_SEGMENTATION>', region: { x1: box[0], y1: box[1], x2: box[2], y2: box[3] } };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const arr = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
const scoreAt = (scores: unknown, i: number) => {
  const s = arr<number>(scores)[i];
  // A backend without scores gives none; treat that as certain rather than dropping the object.
  return typeof s === 'number' && Number.isFinite(s) ? s : 1;
};

/**
 * The detections in one answer: boxes (`bboxes`/`labels`/`scores`), open-vocabulary boxes and
 * polygons, or segmentation polygons (their box is the polygons' bounding box).
 */
export function parseDetections(prompt: PlannedPrompt, result: ScoredPostProcessResult): Detection[] {
  if (!isObj(result)) return [];
  const out: Detection[] = [];
  const classId = prompt.classId;
  const promptLabel = prompt.text ?? '';
  const withClass = (d: Detection): Detection => (classId === undefined ? d : { ...d, classId });
  const addPolys = (polys: unknown, labels: unknown, scores: unknown) => {
    arr<unknown>(polys).forEach((inst, i) => {
      const polygons = arr<unknown>(inst).filter((p): p is number[] => Array.isArray(p));
      const box = boxOfPolygons(polygons);
      if (box === null) return;
      const label = arr<string>(labels)[i] || promptLabel;
      out.push(withClass({ label, score: scoreAt(scores, i), box, polygons }));
    });
  };
  if (Array.isArray(result.bboxes)) {
    const labels = Array.isArray(result.labels) ? result.labels : result.bboxes_labels;
    const scores = Array.isArray(result.scores) ? result.scores : result.bboxes_scores;
    arr<unknown>(result.bboxes).forEach((b, i) => {
      if (!Array.isArray(b) || b.length < 4) return;
      const label = arr<string>(labels)[i] || promptLabel;
      out.push(withClass({ label, score: scoreAt(scores, i), box: [b[0], b[1], b[2], b[3]] as BoxTuple }));
    });
  }
  if (Array.isArray(result.polygons)) {
    const labels = Array.isArray(result.polygons_labels) ? result.polygons_labels : result.labels;
    const scores = Array.isArray(result.polygons_scores) ? result.polygons_scores : result.scores;
    addPolys(result.polygons, labels, scores);
  }
  return out;
}

/** All polygons of a `<REGION_TO_SEGMENTATION>` answer (every instance's), flat `x, y, ...`. */
export function parseRegionPolygons(result: ScoredPostProcessResult): number[][] {
  if (!isObj(result)) return [];
  return arr<unknown>(result.polygons).flatMap((inst) => arr<unknown>(inst).filter((p): p is number[] => Array.isArray(p)));
}

/** Filters applied to detections. */
export interface DetectionFilter {
  /** Drop objects scored below this. Default 0. */
  minScore?: number;
  /** Drop boxes narrower or lower than this many pixels. Default 0 (only empty boxes go). */
  minBoxSize?: number;
}

/** A detection that passed the filters, its box and polygons clipped to the image. */
export interface Candidate extends Detection {
  /** Set when the class is known already (fixed classes); auto classes are resolved at commit. */
  classId?: number;
}

/** What {@link selectDetections} kept and dropped. */
export interface Selection {
  kept: Candidate[];
  /** Phrases that map to none of the fixed classes. */
  unmatched: number;
  /** Dropped by score or size. */
  filtered: number;
}

/**
 * Maps detections to fixed classes (when given), clips them, applies the filters and drops exact
 * duplicates (same class and box), which Florence-2 sometimes repeats and chunked grounding can return twice.
 */
export function selectDetections(
  detections: readonly Detection[],
  classes: ClassMap | null,
  size: ImageSize,
  filter: DetectionFilter = {},
): Selection {
  const minScore = filter.minScore ?? 0;
  const minBox = filter.minBoxSize ?? 0;
  const kept: Candidate[] = [];
  const seen = new Set<string>();
  let unmatched = 0;
  let filtered = 0;
  for (const d of detections) {
    let classId = d.classId;
    if (classId === undefined && classes !== null && classes.fixed) {
      classId = classes.match(d.label);
      if (classId < 0) {
        unmatched++;
        continue;
      }
    }
    const box = clipBox(d.box, size);
    if (box === null || d.score < minScore || box[2] - box[0] < minBox || box[3] - box[1] < minBox) {
      filtered++;
      continue;
    }
    const id = `${classId ?? d.label.toLowerCase()}|${box.join(',')}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const c: Candidate = { label: d.label, score: d.score, box };
    if (classId !== undefined) c.classId = classId;
    if (d.polygons !== undefined) c.polygons = d.polygons.map((p) => clipPolygon(p, size)).filter((p): p is number[] => p !== null);
    kept.push(c);
  }
  return { kept, unmatched, filtered };
}
