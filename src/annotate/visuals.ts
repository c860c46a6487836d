/**
 * Drawings of annotated images for `DIR/visuals/`: an adapter from dataset records to the shared
 * drawing module (`src/visuals/draw.ts`), which draws boxes, polygons, labels and scores with one
 * colour per label.
 */
import { drawResult, type VisualInstance } from '../visuals/draw';
import type { ImageRecord } from './types';

/** The instances to draw for a record: each object's box and polygons, labelled with its class name and score. */
export function visualInstances(record: Pick<ImageRecord, 'instances'>, classes: readonly string[]): VisualInstance[] {
  return record.instances.map((inst) => {
    const v: VisualInstance = { label: classes[inst.classId] ?? inst.label, score: inst.score, box: inst.box };
    if (inst.polygons !== undefined && inst.polygons.length > 0) return { ...v, polygons: inst.polygons };
    return v;
  });
}

/** The drawing and the file extension its format calls for (`.jpg` for JPEG sources, `.png` otherwise). */
export async function renderVisual(
  imageBytes: Buffer,
  record: Pick<ImageRecord, 'instances'>,
  classes: readonly string[],
): Promise<{ data: Buffer; ext: string }> {
  const data = await drawResult(imageBytes, visualInstances(record, classes));
  // JPEG starts with FF D8; the drawing module writes JPEG for JPEG input and PNG for anything else.
  const ext = data[0] === 0xff && data[1] === 0xd8 ? '.jpg' : '.png';
  return { data, ext };
}
