/**
 * Benchmark model folders: synthetic models (random, or scripted to emit one text for every task)
 * built on demand under `.cache/bench-models/` (gitignored) and reused while their synthetic.json
 * still describes what we would build.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { BUILDER_VERSION, buildModel } from '../tools/synth/build';
import type { SizeName } from '../tools/synth/sizes';
import type { Dtype } from '../src/runtime/model-files';

export const BENCH_MODELS_DIR = resolve(__dirname, '..', '.cache', 'bench-models');

interface SyntheticJson {
  builder_version?: string;
  size?: string;
  seed?: number;
  dtypes?: string[];
  script?: string | null;
  script_ids?: number[] | null;
  files?: { name: string; bytes: number }[];
}

/** Why a cached folder cannot be reused, or null when it matches a build of `size`/`seed` with `script` (null: random) holding `dtypes`. */
export function cacheMismatch(
  dir: string,
  size: SizeName,
  seed: number,
  script: string | null = null,
  dtypes: readonly Dtype[] = ['fp32'],
): string | null {
  const file = join(dir, 'synthetic.json');
  if (!existsSync(file)) return 'no synthetic.json';
  let meta: SyntheticJson;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8')) as SyntheticJson;
  } catch {
    return 'unreadable synthetic.json';
  }
  if (meta.builder_version !== BUILDER_VERSION) return `builder version ${meta.builder_version} ≠ ${BUILDER_VERSION}`;
  if (meta.size !== size) return `size ${meta.size} ≠ ${size}`;
  if (meta.seed !== seed) return `seed ${meta.seed} ≠ ${seed}`;
  if ((meta.script ?? null) !== script || (meta.script_ids ?? null) !== null)
    return script === null ? 'scripted, not random' : 'another script';
  const lacking = dtypes.filter((d) => !meta.dtypes?.includes(d));
  if (lacking.length > 0) return `no ${lacking.join(', ')} graphs`;
  for (const f of meta.files ?? []) {
    const p = join(dir, f.name);
    if (!existsSync(p) || statSync(p).size !== f.bytes) return `${f.name} missing or of another size`;
  }
  for (const name of ['vision_encoder', 'embed_tokens', 'encoder_model', 'decoder_model_merged']) {
    if (!existsSync(join(dir, 'onnx', `${name}.onnx`))) return `onnx/${name}.onnx missing`;
  }
  return null;
}

/** The folder of a synthetic model of `size` (random, or scripted), built (or rebuilt) when the cache does not match. */
export async function benchModel(
  size: SizeName,
  seed: number,
  log: (line: string) => void,
  script: string | null = null,
  dtypes: readonly Dtype[] = ['fp32'],
): Promise<string> {
  const kind = script === null ? 'random' : `script-${createHash('sha256').update(script).digest('hex').slice(0, 8)}`;
  const variants = dtypes.length === 1 && dtypes[0] === 'fp32' ? '' : `-${dtypes.join('_')}`;
  const dir = join(BENCH_MODELS_DIR, `${size}-${kind}-seed${seed}${variants}`);
  const why = cacheMismatch(dir, size, seed, script, dtypes);
  if (why === null) {
    log(`model ${size}: reusing ${dir}`);
    return dir;
  }
  log(`model ${size}: building into ${dir} (${existsSync(dir) ? why : 'not cached'})${size === 'tiny' ? '' : ', about 20 s'}`);
  const r = await buildModel({ size, seed, out: dir, dtypes: [...dtypes], force: true, ...(script === null ? {} : { script }) });
  log(`model ${size}: built in ${r.seconds.toFixed(1)} s`);
  return r.dir;
}
