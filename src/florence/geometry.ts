/** Image sizes, pixel boxes and the 1000-bin coordinate quantization of Florence-2 (contract §7.1). */

/** A width/height pair in pixels (of the original, EXIF-oriented image unless said otherwise). */
export interface ImageSize {
  width: number;
  height: number;
}

/** A box in pixel coordinates of the original image: top-left (x1, y1), bottom-right (x2, y2). */
export interface PixelRegion {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** The same box as a tuple `[x1, y1, x2, y2]` (how post-processing and datasets store boxes). */
export type BoxTuple = [number, number, number, number];

/** Number of quantization bins per axis (`<loc_0>` .. `<loc_999>`). */
export const NUM_BINS = 1000;

/**
 * Pixel coordinate → bin: `clamp(floor(x / (extent / bins)), 0, bins - 1)` (RC `BoxQuantizer`, mode
 * `floor`). Throws `RangeError` for a non-finite coordinate or an extent that is not > 0.
 */
export function quantizeCoordinate(x: number, extent: number, bins: number = NUM_BINS): number {
  if (!Number.isFinite(x)) throw new RangeError(`coordinate must be a finite number, got ${String(x)}`);
  if (!Number.isFinite(extent) || extent <= 0) throw new RangeError(`size must be a finite number > 0, got ${String(extent)}`);
  const bin = Math.floor(x / (extent / bins));
  return Math.min(Math.max(bin, 0), bins - 1);
}

/**
 * Bin → pixel coordinate at the bin centre: `((bin + 0.5) / bins) * extent`, in float64 as
 * transformers.js computes it (RC computes `(bin + 0.5) * (extent / bins)` in float32); results match
 * the contract's worked examples to 1e-4.
 */
export function dequantizeBin(bin: number, extent: number, bins: number = NUM_BINS): number {
  return ((bin + 0.5) / bins) * extent;
}
