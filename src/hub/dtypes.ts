/** Which ONNX variant (dtype) of each module to fetch, and the files that makes up a model folder. */
import { existsSync } from 'node:fs';
import {
  DTYPE_SUFFIX,
  MODULES,
  isDtype,
  isGpuProvider,
  isProvider,
  moduleFile,
  type Dtype,
  type DtypeByModule,
  type DtypeChoice,
  type ModuleName,
} from '../runtime/model-files';
import { HubError } from './errors';

export type { DtypeByModule };

/**
 * What `--dtype auto` (the default) tries for each module, best first, per device kind; a folder
 * lacking a variant gets the next one, and fp32 last.
 *
 * CPU, from `npm run bench -- --dtypes` on the base-sized random model (2 cores, onnxruntime-node
 * 1.30; README "ONNX variants"; every module in the same variant): int8 and q8 were the fastest
 * variants that pass the agreement check, at least 85% of greedy tokens equal to fp32's (int8 90%,
 * q8 88%, uint8 85%; q4 and q4f16 10%, bnb4 50%). They are the same weights except in the vision
 * encoder, whose q8 is uint8 and was slower in both runs, so int8 comes first. Against fp32 it ran the vision
 * encoder 1.6–1.7× and the decoder 1.7–2.1× faster (two runs) and held 39% of fp32's resident memory
 * after load, 57% after a request. q4 decoded 1.4× faster than fp32, slower than int8; bnb4 at 0.5×.
 */
const EIGHT_BIT: readonly Dtype[] = ['int8', 'q8', 'uint8', 'fp32'];
const AUTO_ORDER: Record<'cpu' | 'gpu', Record<ModuleName, readonly Dtype[]>> = {
  cpu: {
    vision_encoder: EIGHT_BIT,
    embed_tokens: EIGHT_BIT,
    encoder_model: EIGHT_BIT,
    decoder_model_merged: EIGHT_BIT,
  },
  // Not measured here (no GPU): fp16 where half precision on tensor cores speeds up the
  // compute-bound vision encoder and halves the embedding table; fp32 for the language model so
  // its tokens stay those of the fp32 reference.
  gpu: {
    vision_encoder: ['fp16', 'fp32'],
    embed_tokens: ['fp16', 'fp32'],
    encoder_model: ['fp32'],
    decoder_model_merged: ['fp32'],
  },
};

/**
 * The `auto` dtype table for an execution provider: for each module the first variant of its
 * order that `available` says the folder (or repository) has; when it has none of them, fp32, or
 * with `orAny` the first variant it has (a folder of q4 files only loads its q4 files).
 */
export function autoDtypes(
  provider: string,
  available: (module: ModuleName, dtype: Dtype) => boolean = () => true,
  orAny = false,
): DtypeByModule {
  const order = AUTO_ORDER[isProvider(provider) && isGpuProvider(provider) ? 'gpu' : 'cpu'];
  const any = (m: ModuleName) => (orAny ? (Object.keys(DTYPE_SUFFIX) as Dtype[]).find((d) => available(m, d)) : undefined);
  return Object.fromEntries(MODULES.map((m) => [m, order[m].find((d) => available(m, d)) ?? any(m) ?? 'fp32'])) as DtypeByModule;
}

/** The dtype table a local folder loads with on `provider`: `auto` resolved against the files it has, or the table as given. */
export function folderDtypes(dir: string, setting: DtypeByModule | 'auto', provider: string): DtypeByModule {
  if (setting !== 'auto') return setting;
  return autoDtypes(provider, (m, d) => existsSync(moduleFile(dir, m, d)), true);
}

/** The dtypes fetched from the Hub when none are given: `auto` for the provider, every variant assumed present. */
export function defaultDtypes(provider: string): DtypeByModule {
  return autoDtypes(provider);
}

const isModule = (s: string): s is ModuleName => (MODULES as readonly string[]).includes(s);

/**
 * Parses a dtype argument: one dtype for all modules (`fp16`) or `module=dtype,...`; modules not
 * named get fp32, the same rule as the server's `--dtype`, so a pull fetches what `serve` loads.
 */
export function parseDtypeArg(text: string): DtypeByModule | 'auto' {
  const s = text.trim();
  const dtypes = Object.keys(DTYPE_SUFFIX).join('|');
  if (s === 'auto') return 'auto';
  if (!s.includes('=')) {
    if (!isDtype(s))
      throw new HubError(
        `invalid dtype ${JSON.stringify(text)}: use auto, one of ${dtypes} or module=dtype,... (modules: ${MODULES.join(', ')})`,
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

/** A full per-module table from a choice (a single dtype, a partial table with fp32 for the rest, or undefined/`auto` → device default). */
export function dtypesFrom(choice: DtypeChoice | 'auto' | undefined, provider = 'cpu'): DtypeByModule {
  if (choice === undefined || choice === 'auto') return defaultDtypes(provider);
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
