/** Which ONNX variant (dtype) of each module to fetch, and the files that makes up a model folder. */
import {
  DTYPE_SUFFIX,
  MODULES,
  isDtype,
  isGpuProvider,
  isProvider,
  type Dtype,
  type DtypeByModule,
  type DtypeChoice,
  type ModuleName,
} from '../runtime/model-files';
import { HubError } from './errors';

export type { DtypeByModule };

/**
 * The dtypes fetched when none are given, per execution provider.
 *
 * - `cpu` (and anything unknown): fp32 everywhere. fp32 is the reference-accurate variant and on CPU
 *   the others buy little: fp16 is converted back to fp32 kernels, and the quantized graphs trade
 *   accuracy for a speed-up that is small for this model's sizes.
 * - `cuda`, `tensorrt`, `webgpu`: fp16 for `vision_encoder` (most of the per-image compute, which
 *   half precision on tensor cores speeds up and which tolerates it) and `embed_tokens` (a lookup
 *   table: half the memory, same result within rounding); fp32 for `encoder_model` and
 *   `decoder_model_merged`, so generated text stays token for token that of the fp32 reference
 *   (small logit differences flip greedy and beam choices). Ask for other variants with a dtype.
 */
export function defaultDtypes(provider: string): DtypeByModule {
  const gpu = isProvider(provider) && isGpuProvider(provider);
  return {
    vision_encoder: gpu ? 'fp16' : 'fp32',
    embed_tokens: gpu ? 'fp16' : 'fp32',
    encoder_model: 'fp32',
    decoder_model_merged: 'fp32',
  };
}

const isModule = (s: string): s is ModuleName => (MODULES as readonly string[]).includes(s);

/**
 * Parses a dtype argument: one dtype for all modules (`fp16`) or `module=dtype,...`; modules not
 * named get fp32, the same rule as the server's `--dtype`, so a pull fetches what `serve` loads.
 */
export function parseDtypeArg(text: string): DtypeByModule {
  const s = text.trim();
  const dtypes = Object.keys(DTYPE_SUFFIX).join('|');
  if (!s.includes('=')) {
    if (!isDtype(s))
      throw new HubError(
        `invalid dtype ${JSON.stringify(text)}: use one of ${dtypes} or module=dtype,... (modules: ${MODULES.join(', ')})`,
      );
    return dtypesFrom(s);
  }
  const out: Record<ModuleName, Dtype> = { ...dtypesFrom('fp32') };
  const seen = new Set<string>();
  for (const item of s.split(',')) {
    const eq = item.indexOf('=');
    const module = (eq < 0 ? item : item.slice(0, eq)).trim();
    const dtype = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (!isModule(module))
      throw new HubError(
        `invalid dtype ${JSON.stringify(text)}: unknown module ${JSON.stringify(module)} (modules: ${MODULES.join(', ')})`,
      );
    if (seen.has(module)) throw new HubError(`invalid dtype ${JSON.stringify(text)}: ${module} is given twice`);
    if (!isDtype(dtype)) throw new HubError(`invalid dtype ${JSON.stringify(text)}: ${module}=${dtype} is not one of ${dtypes}`);
    seen.add(module);
    out[module] = dtype;
  }
  return out;
}

/** A full per-module table from a choice (a single dtype, a partial table with fp32 for the rest, or undefined → device default). */
export function dtypesFrom(choice: DtypeChoice | undefined, provider = 'cpu'): DtypeByModule {
  if (choice === undefined) return defaultDtypes(provider);
  if (typeof choice === 'string') {
    if (!isDtype(choice)) throw new HubError(`invalid dtype ${JSON.stringify(choice)}`);
    return Object.fromEntries(MODULES.map((m) => [m, choice])) as DtypeByModule;
  }
  const out = Object.fromEntries(MODULES.map((m) => [m, 'fp32'])) as Record<ModuleName, Dtype>;
  for (const [m, d] of Object.entries(choice)) {
    if (!isModule(m)) throw new HubError(`unknown module ${JSON.stringify(m)} (modules: ${MODULES.join(', ')})`);
    if (d === undefined) continue;
    if (!isDtype(d)) throw new HubError(`${m}: invalid dtype ${JSON.stringify(d)}`);
    out[m] = d;
  }
  return out;
}

/** Repository path of a module's ONNX file for a dtype, e.g. `onnx/vision_encoder_fp16.onnx`. */
export function onnxPath(module: ModuleName, dtype: Dtype): string {
  return `onnx/${module}${DTYPE_SUFFIX[dtype]}.onnx`;
}

/** Files every folder needs (the server's loader reads them). */
export const REQUIRED_FILES = [
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
] as const;

/** Files fetched when the repository has them. */
export const OPTIONAL_FILES = ['vocab.json', 'merges.txt', 'added_tokens.json', 'special_tokens_map.json'] as const;

/**
 * The repository paths to fetch for a dtype table, given the repository's file list: the required
 * and present optional files, each module's ONNX file, and its external-data files when the export
 * has them (graphs over 2 GB keep weights in `<file>_data` or `<file>.data`, possibly numbered).
 * Throws a HubError naming what is missing.
 */
export function filesToFetch(siblings: readonly string[], dtypes: DtypeByModule, repo: string, revision: string): string[] {
  const have = new Set(siblings);
  const missing: string[] = [];
  const files: string[] = [];
  for (const f of REQUIRED_FILES) {
    if (have.has(f)) files.push(f);
    else missing.push(f);
  }
  for (const f of OPTIONAL_FILES) if (have.has(f)) files.push(f);
  for (const m of MODULES) {
    const p = onnxPath(m, dtypes[m]);
    if (!have.has(p)) {
      const available = (Object.keys(DTYPE_SUFFIX) as Dtype[]).filter((d) => have.has(onnxPath(m, d)));
      missing.push(`${p} (dtype ${dtypes[m]} of ${m}; this repository has ${available.length > 0 ? available.join(', ') : 'none'})`);
      continue;
    }
    files.push(p);
    for (const s of siblings) if (isExternalData(p, s)) files.push(s);
  }
  if (missing.length > 0) throw new HubError(`${repo} at revision ${revision} lacks ${missing.join('; ')}`);
  return files;
}

/** Whether `candidate` is an external-data file of the ONNX file `onnx`. */
function isExternalData(onnx: string, candidate: string): boolean {
  if (!candidate.startsWith(onnx) || candidate === onnx) return false;
  return /^(_data|\.data)(_?\d+)?$/.test(candidate.slice(onnx.length));
}
