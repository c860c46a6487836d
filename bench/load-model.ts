/**
 * The load test's model: a tiny synthetic Florence-2 whose decoder always emits the `car` script,
 * built under `.cache/bench-models/` (gitignored, bench/models.ts) and reused while it matches.
 */
import { benchModel } from './models';

/** What the scripted decoder emits for every task. */
export const CAR_SCRIPT = 'car<loc_53><loc_333><loc_933><loc_774>';
/** The script's box in bins; pixels are ((bin + 0.5) / 1000) * extent. */
export const CAR_BINS = [53, 333, 933, 774] as const;
const SEED = 3;

/** The car box in pixels for an image of `width` x `height`. */
export function carBox(width: number, height: number): [number, number, number, number] {
  const px = (bin: number, extent: number) => ((bin + 0.5) / 1000) * extent;
  return [px(CAR_BINS[0], width), px(CAR_BINS[1], height), px(CAR_BINS[2], width), px(CAR_BINS[3], height)];
}

/** The folder of the car-scripted tiny model, built when the cache does not match. */
export function loadTestModel(log: (line: string) => void): Promise<string> {
  return benchModel('tiny', SEED, log, CAR_SCRIPT);
}
