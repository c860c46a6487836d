/**
 * The load test's model: a tiny synthetic Florence-2 whose decoder always emits the `car` script,
 * built under `.cache/load-models/` (gitignored) and reused while its synthetic.json still describes it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BUILDER_VERSION, buildModel } from '../tools/synth/build';

export const LOAD_MODELS_DIR = resolve(__dirname, '..', '.cache', 'load-models');

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

/** Why the cached folder cannot be reused, or null when it is a tiny car-scripted build of this builder. */
function cacheMismatch(dir: string): string | null {
  const file = join(dir, 'synthetic.json');
  if (!existsSync(file)) return 'not cached';
  let meta: { builder_version?: string; size?: string; seed?: number; script?: string | null; files?: { name: string; bytes: number }[] };
  try {
    meta = JSON.parse(readFileSync(file, 'utf8')) as typeof meta;
  } catch {
    return 'unreadable synthetic.json';
  }
  if (meta.builder_version !== BUILDER_VERSION) return `builder version ${meta.builder_version} ≠ ${BUILDER_VERSION}`;
  if (meta.size !== 'tiny' || meta.seed !== SEED || meta.script !== CAR_SCRIPT) return 'another model';
  for (const f of meta.files ?? []) {
    const p = join(dir, f.name);
    if (!existsSync(p) || statSync(p).size !== f.bytes) return `${f.name} missing or of another size`;
  }
  return null;
}

/** The folder of the car-scripted tiny model, built when the cache does not match. */
export async function loadTestModel(log: (line: string) => void): Promise<string> {
  const dir = join(LOAD_MODELS_DIR, `tiny-car-seed${SEED}`);
  const why = cacheMismatch(dir);
  if (why === null) {
    log(`model: reusing ${dir}`);
    return dir;
  }
  log(`model: building ${dir} (${why})`);
  const r = await buildModel({ size: 'tiny', seed: SEED, script: CAR_SCRIPT, out: dir, force: true });
  log(`model: built in ${r.seconds.toFixed(1)} s`);
  return r.dir;
}
