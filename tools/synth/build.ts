/**
 * Writes a complete synthetic model folder in the onnx-community/Florence-2-* layout: the ONNX graphs
 * under `onnx/`, the configs, and the real Florence-2 tokenizer.
 */
import { mkdir, readFile, rename, rm, writeFile, copyFile, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve, dirname, basename } from 'node:path';
import { createHfTokenizer } from '../../src/florence/tokenizer';
import { type GraphBuilder, type WeightFormat, writeModel } from './onnx-graph';
import { DTYPE_SUFFIX, type Dtype } from '../../src/runtime/model-files';
import { buildDecoder, buildEmbedTokens, buildEncoder, buildMergedDecoder } from './bart';
import { buildVisionEncoder, visionCost } from './vision';
import { RandomWeights } from './weights';
import { type ScriptPlan, scriptedWeights } from './script';
import { SIZES, type SizeName, type SizeSpec, VOCAB_SIZE } from './sizes';
import { type WeightSource } from './layers';

/** Modules whose graph has convolutions: the `q8` quantizer gives their weights uint8 (README "Variants"). */
const HAS_CONV = new Set(['vision_encoder']);

/** How each variant stores its weights; `q8` is `uint8` or `int8` by module (below). */
const WEIGHT_FORMATS: Record<Exclude<Dtype, 'q8'>, WeightFormat> = {
  fp32: { fp16: false, quant: 'none' },
  fp16: { fp16: true, quant: 'none' },
  int8: { fp16: false, quant: 'int8' },
  uint8: { fp16: false, quant: 'uint8' },
  q4: { fp16: false, quant: 'q4' },
  q4f16: { fp16: true, quant: 'q4' },
  bnb4: { fp16: false, quant: 'bnb4' },
};

/** How a variant of a module stores its weights. */
export function weightFormat(dtype: Dtype, module: string): WeightFormat {
  if (dtype === 'q8') return WEIGHT_FORMATS[HAS_CONV.has(module) ? 'uint8' : 'int8'];
  return WEIGHT_FORMATS[dtype];
}

export interface BuildOptions {
  size: SizeName;
  out: string;
  seed?: number;
  /** Text the decoder must emit (tokenized with the real tokenizer). */
  script?: string;
  /** Token ids the decoder must emit (instead of `script`). */
  scriptIds?: number[];
  dtypes?: Dtype[];
  /** Also write `decoder_model.onnx` (the decoder without cache). */
  plainDecoder?: boolean;
  /** Replace an existing folder. */
  force?: boolean;
  log?: (line: string) => void;
}

export interface BuildResult {
  dir: string;
  files: { name: string; bytes: number; parameters: number }[];
  scriptIds: number[] | null;
  plan: ScriptPlan | null;
  seconds: number;
}

/** Where the vendored tokenizer and configs live (see vendor/florence2/SOURCE.md), found upwards so it works from tools/ and dist/tools/. */
export const VENDOR_DIR = findUp(join('vendor', 'florence2', 'tokenizer.json'));

function findUp(relative: string): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, relative))) return dirname(join(dir, relative));
    if (dirname(dir) === dir) throw new Error(`cannot find ${relative} above ${__dirname}`);
  }
}
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const BUILDER_VERSION = '2';

const TOKENIZER_FILES_AS_IS = [
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'special_tokens_map.json',
  'generation_config.json',
  'preprocessor_config.json',
];

/** The real Florence-2 tokenizer, as written into model folders (no leftover truncation/padding). */
export async function loadVendoredTokenizerJson(): Promise<Record<string, unknown>> {
  const json = JSON.parse(await readFile(join(VENDOR_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  json.truncation = null;
  json.padding = null;
  return json;
}

/** Tokenizes script text the way the processor tokenizes text, without `<s>`/`</s>`. */
export async function tokenizeScript(text: string): Promise<number[]> {
  const tokenizerJson = await loadVendoredTokenizerJson();
  const config = JSON.parse(await readFile(join(VENDOR_DIR, 'tokenizer_config.json'), 'utf8')) as object;
  const tok = createHfTokenizer(tokenizerJson, config);
  return tok.encode(text, { add_special_tokens: false }).ids;
}

/** config.json for a size: the onnx-community base-ft file with this size's dimensions. */
export async function modelConfig(spec: SizeSpec): Promise<Record<string, unknown>> {
  const config = JSON.parse(await readFile(join(VENDOR_DIR, 'config.json'), 'utf8')) as Record<string, unknown> & {
    text_config: object;
    vision_config: object;
  };
  const t = spec.text;
  config._name_or_path = spec.imitates;
  config.projection_dim = t.dModel;
  Object.assign(config.text_config, {
    d_model: t.dModel,
    encoder_layers: t.encoderLayers,
    decoder_layers: t.decoderLayers,
    num_hidden_layers: t.encoderLayers,
    encoder_attention_heads: t.encoderHeads,
    decoder_attention_heads: t.decoderHeads,
    encoder_ffn_dim: t.encoderFfn,
    decoder_ffn_dim: t.decoderFfn,
    max_position_embeddings: t.maxPositions,
    vocab_size: VOCAB_SIZE,
  });
  const v = spec.vision;
  Object.assign(config.vision_config, {
    dim_embed: v.dimEmbed,
    depths: v.depths,
    num_heads: v.numHeads,
    num_groups: v.numGroups,
    patch_size: v.patchSize,
    patch_stride: v.patchStride,
    patch_padding: v.patchPadding,
    patch_prenorm: v.patchPrenorm,
    window_size: v.windowSize,
    projection_dim: t.dModel,
  });
  return config;
}

/** Builds a model folder. Writes into a temporary sibling and renames, so a folder is never half-built. */
export async function buildModel(options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const spec = SIZES[options.size];
  const seed = options.seed ?? 0;
  const dtypes = options.dtypes ?? ['fp32'];
  const dir = resolve(options.out);
  if (existsSync(dir) && !options.force && (await readdir(dir)).length > 0) {
    throw new Error(`${dir} exists and is not empty (pass --force to replace it)`);
  }
  if (options.script !== undefined && options.scriptIds !== undefined) throw new Error('give a script as text or as ids, not both');

  // 1) weights: seeded random, then the scripted decoder on top if asked
  const scriptIds = options.scriptIds ?? (options.script !== undefined ? await tokenizeScript(options.script) : null);
  let weights: WeightSource = new RandomWeights(seed);
  let plan: ScriptPlan | null = null;
  if (scriptIds) ({ weights, plan } = scriptedWeights(spec.text, weights, scriptIds, seed));

  const tmp = join(dirname(dir), `.${basename(dir)}.building-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'onnx'), { recursive: true });
  try {
    // 2) graphs, one at a time (each is built, streamed to disk and dropped)
    const files: BuildResult['files'] = [];
    const graphs: [string, (format: WeightFormat) => GraphBuilder][] = [
      ['vision_encoder', (f) => buildVisionEncoder(spec.vision, spec.imageSize, spec.text.dModel, weights, f)],
      ['embed_tokens', (f) => buildEmbedTokens(spec.text, weights, f)],
      ['encoder_model', (f) => buildEncoder(spec.text, weights, f)],
      ['decoder_model_merged', (f) => buildMergedDecoder(spec.text, weights, f)],
    ];
    if (options.plainDecoder) graphs.push(['decoder_model', (f) => buildDecoder(spec.text, weights, f)]);
    for (const dtype of dtypes) {
      for (const [name, build] of graphs) {
        const file = `${name}${DTYPE_SUFFIX[dtype]}.onnx`;
        const graph = build(weightFormat(dtype, name));
        const bytes = await writeModel(join(tmp, 'onnx', file), graph, {
          producerName: 'florence2-server synth',
          producerVersion: BUILDER_VERSION,
          opset: ONNX_OPSET,
          irVersion: ONNX_IR_VERSION,
          docString: `synthetic Florence-2 ${spec.name} ${name} (${scriptIds ? 'scripted' : 'random'} weights, seed ${seed}); not a trained model`,
        });
        files.push({ name: `onnx/${file}`, bytes, parameters: graph.parameterCount() });
        log(`wrote onnx/${file} (${(bytes / 1e6).toFixed(1)} MB)`);
      }
    }

    // 3) configs and tokenizer
    await writeFile(join(tmp, 'config.json'), JSON.stringify(await modelConfig(spec), null, 2) + '\n');
    await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(await loadVendoredTokenizerJson()));
    for (const f of TOKENIZER_FILES_AS_IS) await copyFile(join(VENDOR_DIR, f), join(tmp, f));
    const cost = visionCost(spec.vision, spec.imageSize, spec.text.dModel);
    await writeFile(
      join(tmp, 'synthetic.json'),
      JSON.stringify(
        {
          note: 'Synthetic Florence-2 model built by florence2-server tools/synth: real export I/O contract, untrained weights.',
          builder_version: BUILDER_VERSION,
          size: spec.name,
          seed,
          dtypes,
          script: options.script ?? null,
          script_ids: scriptIds,
          expected_output_ids: plan ? [2, ...plan.outputs] : null,
          vision_gflops_per_image: { stand_in: (2 * cost.standInMacs) / 1e9, davit: (2 * cost.davitMacs) / 1e9 },
          files,
        },
        null,
        2,
      ) + '\n',
    );

    // 4) publish atomically
    if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
    await mkdir(dirname(dir), { recursive: true });
    await rename(tmp, dir);
    return { dir, files, scriptIds, plan, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Total size of a built folder's ONNX files in bytes. */
export async function onnxBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(join(dir, 'onnx'))) total += (await stat(join(dir, 'onnx', f))).size;
  return total;
}
