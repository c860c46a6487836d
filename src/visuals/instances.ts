/** Client results → what {@link drawResult} draws. */
import type { Box, RegionInput, SegmentInstance, TaskResult } from 'florence2-client';
import type { VisualInstance } from './draw';

/** What to draw for one result: shapes, plus text that has no geometry. */
export interface VisualScene {
  instances: VisualInstance[];
  /** Caption / OCR text / region answer without a shape to attach it to. */
  caption?: string;
}

/** Florence-2 sometimes repeats location tokens in text answers; they mean nothing on a picture. */
const stripLocations = (text: string) =>
  text
    .replace(/<loc_\d+>/g, '')
    .replace(/\s+/g, ' ')
    .trim();

/** The server sends 0 when scores were not asked for: show no score rather than "0.00". */
const score = (s: number | undefined) => (s === undefined ? {} : { score: s });

const fromBox = (b: Box): VisualInstance => ({ label: b.label, ...score(b.score), box: [b.x1, b.y1, b.x2, b.y2] });
const fromInstance = (i: SegmentInstance): VisualInstance => ({ label: i.label, ...score(i.score), polygons: i.polygons });

function regionBox(r: RegionInput): [number, number, number, number] {
  if (Array.isArray(r)) {
    const [x1, y1, x2, y2] = r as readonly number[];
    return [x1, y1, x2, y2];
  }
  const o = r as { x1: number; y1: number; x2: number; y2: number };
  return [o.x1, o.y1, o.x2, o.y2];
}

/**
 * The scene of a result. `context.region` is the region a region task asked about: its answer is
 * drawn as that box's label (the response does not repeat the region).
 */
export function visualsFromResult(result: TaskResult, context: { region?: RegionInput } = {}): VisualScene {
  switch (result.family) {
    case 'caption':
      return { instances: [], caption: stripLocations(result.text) };
    case 'detect':
    case 'phrase_grounding':
      return { instances: result.boxes.map(fromBox) };
    case 'open_vocabulary':
      return { instances: [...result.boxes.map(fromBox), ...result.instances.map(fromInstance)] };
    case 'segment':
      return { instances: result.instances.map(fromInstance) };
    case 'ocr':
      if (result.lines.length > 0) return { instances: result.lines.map((l) => ({ label: l.text, ...score(l.score), quad: l.points })) };
      return { instances: [], caption: stripLocations(result.text) };
    case 'region': {
      const text = stripLocations(result.text);
      if (context.region) return { instances: [{ label: text, box: regionBox(context.region) }] };
      return { instances: [], caption: text };
    }
  }
}
