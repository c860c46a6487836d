/**
 * Ultralytics YOLO label files: one line per object, `class cx cy w h` (detection) or
 * `class x1 y1 x2 y2 ...` (segmentation), coordinates normalised to [0, 1] by the image size,
 * clipped, with 6 decimals; an image without objects gets an empty file (a "background" image, which
 * Ultralytics counts as such instead of as a missing label).
 */
import { polygonArea } from '../geometry';
import type { BoxTuple, ImageRecord, Instance, ImageSize } from '../types';

/** Label geometry: boxes (`yolo`) or polygons (`yolo-seg`). */
export type YoloKind = 'detect' | 'segment';

const norm = (v: number, extent: number) => {
  const t = v / extent;
  // Clip after normalising so rounding of the pixel values can never leave [0, 1]; `+ 0` turns -0 into 0.
  return (t < 0 ? 0 : t > 1 ? 1 : t) + 0;
};
const f6 = (v: number) => v.toFixed(6);

/** One detection line: `id cx cy w h`. */
export function yoloBoxLine(classId: number, box: BoxTuple, size: ImageSize): string {
  const x1 = norm(box[0], size.width);
  const y1 = norm(box[1], size.height);
  const x2 = norm(box[2], size.width);
  const y2 = norm(box[3], size.height);
  return `${classId} ${f6((x1 + x2) / 2)} ${f6((y1 + y2) / 2)} ${f6(x2 - x1)} ${f6(y2 - y1)}`;
}

/** One segmentation line: `id x1 y1 x2 y2 ...` for a flat pixel polygon. */
export function yoloPolygonLine(classId: number, polygon: readonly number[], size: ImageSize): string {
  const parts: string[] = [String(classId)];
  for (let i = 0; i + 1 < polygon.length; i += 2) parts.push(f6(norm(polygon[i], size.width)), f6(norm(polygon[i + 1], size.height)));
  return parts.join(' ');
}

/**
 * The polygon a YOLO-seg line gets for an instance: a YOLO line holds one polygon, so of several
 * (Florence-2 splits a mask at `<sep>`) the largest is kept; without polygons, the box's rectangle.
 */
export function instancePolygon(inst: Instance): number[] {
  const polys = (inst.polygons ?? []).filter((p) => p.length >= 6);
  if (polys.length === 0) {
    const [x1, y1, x2, y2] = inst.box;
    return [x1, y1, x2, y1, x2, y2, x1, y2];
  }
  let best = polys[0];
  for (const p of polys) if (polygonArea(p) > polygonArea(best)) best = p;
  return best;
}

/** The label file text of a record: lines in instance order, `\n`-terminated; `''` without objects. */
export function yoloLabelText(record: Pick<ImageRecord, 'width' | 'height' | 'instances'>, kind: YoloKind): string {
  const size = { width: record.width, height: record.height };
  const lines = record.instances.map((inst) =>
    kind === 'segment' ? yoloPolygonLine(inst.classId, instancePolygon(inst), size) : yoloBoxLine(inst.classId, inst.box, size),
  );
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
