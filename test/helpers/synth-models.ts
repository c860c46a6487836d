/**
 * Synthetic model folders for tests, built on first use into one temporary directory per test
 * process (tiny models build in about a second) and removed when the process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, type BuildOptions } from '../../tools/synth/build';

let root: string | null = null;
const built = new Map<string, Promise<string>>();

function modelsRoot(): string {
  if (root === null) {
    root = mkdtempSync(join(tmpdir(), 'florence2-test-models-'));
    const dir = root;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return root;
}

/** The `car` box script of the synth tool's example: `<OD>` parses to one "car" box. */
export const CAR_SCRIPT = 'car<loc_53><loc_333><loc_933><loc_774>';

/** Builds (once per process) a tiny model folder with the given options and returns its path. */
export function tinyModel(options: Omit<BuildOptions, 'size' | 'out'> & { name: string }): Promise<string> {
  const { name, ...rest } = options;
  let dir = built.get(name);
  if (!dir) {
    const out = join(modelsRoot(), name);
    dir = buildModel({ size: 'tiny', out, ...rest }).then((r) => r.dir);
    built.set(name, dir);
  }
  return dir;
}

export const randomTiny = () => tinyModel({ name: 'tiny-random-seed1', seed: 1, plainDecoder: true, dtypes: ['fp32', 'fp16'] });
export const carTiny = () => tinyModel({ name: 'tiny-car', script: CAR_SCRIPT, seed: 3 });
