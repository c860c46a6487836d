/** Pixel geometry for annotation outputs: clipping, polygon boxes and areas. */
import type { BoxTuple, ImageSize } from './types';

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** The box with corners ordered and clipped to the image; null when nothing of it is left (zero width or height). */
export function clipBox(box: readonly number[], size: ImageSize): BoxTuple | null {
  if (box.length < 4 || !box.slice(0, 4).every(Number.isFinite)) return null;
  const x1 = clamp(Math.min(box[0], box[2]), 0, size.width);
  const x2 = clamp(Math.max(box[0], box[2]), 0, size.width);
  const y1 = clamp(Math.min(box[1], box[3]), 0, size.height);
  const y2 = clamp(Math.max(box[1], box[3]), 0, size.height);
  return x2 > x1 && y2 > y1 ? [x1, y1, x2, y2] : null;
}

/**
 * A flat polygon with every vertex clamped into the image (Florence-2 coordinates are bin centres,
 * so this only matters for foreign backends); null when fewer than 3 points remain or it has no area.
 */
export function clipPolygon(flat: readonly number[], size: ImageSize): number[] | null {
  const n = flat.length - (flat.length % 2);
  if (n < 6 || !flat.slice(0, n).every(Number.isFinite)) return null;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i += 2) {
    out[i] = clamp(flat[i], 0, size.width);
    out[i + 1] = clamp(flat[i + 1], 0, size.height);
  }
  return polygonArea(out) > 0 ? out : null;
}

/** Absolute area of a flat polygon (shoelace formula). */
export function polygonArea(flat: readonly number[]): number {
  let twice = 0;
  const n = flat.length - (flat.length % 2);
  for (let i = 0; i < n; i += 2) {
    const j = (i + 2) % n;
    twice += flat[i] * flat[j + 1] - flat[j] * flat[i + 1];
  }
  return Math.abs(twice) / 2;
}

/** The bounding box of polygons' vertices, or null for none. */
export function boxOfPolygons(polygons: readonly (readonly number[])[]): BoxTuple | null {
  let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of polygons) {
    for (let i = 0; i + 1 < p.length; i += 2) {
      x1 = Math.min(x1, p[i]);
      x2 = Math.max(x2, p[i]);
      y1 = Math.min(y1, p[i + 1]);
      y2 = Math.max(y2, p[i + 1]);
    }
  }
  return Number.isFinite(x1) ? [x1, y1, x2, y2] : null;
}

/** The rectangle of a box as a flat 4-point polygon (clockwise from top-left). */
export function boxPolygon(box: BoxTuple): number[] {
  const [x1, y1, x2, y2] = box;
  return [x1, y1, x2, y1, x2, y2, x1, y2];
}
