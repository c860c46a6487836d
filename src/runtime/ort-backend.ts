/**
 * The only module that talks to onnxruntime-node: opens a Florence-2 folder's four sessions, checks
 * that they are a Florence-2 export, and implements the {@link ModelBackend} seam over them.
 */
import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { MODULES, type ModuleName, type DtypeChoice, moduleDtype, moduleFile, type Provider } from './model-files';
import {
  type DecoderStepInput,
  type DecoderStepOutput,
  type EncoderStates,
  type KvCache,
  type ModelBackend,
  type ModelDims,
} from '../florence/generation/backend';

export { MODULES, DTYPE_SUFFIX, isDtype, moduleFile } from './model-files';
export type { ModuleName, Dtype } from './model-files';

export interface OrtBackendOptions {
  /** One dtype for every module, or one per module (missing modules: fp32). */
  dtype?: DtypeChoice;
  executionProviders?: ort.InferenceSession.ExecutionProviderConfig[];
  /** Threads per session for one operator; default: the cores this process may use. Size it so workers × threads ≤ cores. */
  intraOpNumThreads?: number;
  /**
   * Keep onnxruntime's CPU memory arena (default): activation buffers stay allocated between runs.
   * Off, a worker holds 350 (fp32) to 470 MiB (int8) less after a request on base, and the vision
   * encoder runs 15–25% slower (README "ONNX variants").
   */
  cpuMemoryArena?: boolean;
}

/** onnxruntime execution providers for a device. */
export function executionProvidersFor(provider: Provider, deviceId: number): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (provider) {
    case 'cuda':
      return [{ name: 'cuda', deviceId }];
    case 'tensorrt':
      return [{ name: 'tensorrt', deviceId }];
    case 'webgpu':
      return ['webgpu'];
    case 'cpu':
      return ['cpu'];
  }
}

export class ModelLoadError extends Error {}

type Spec = { name: string; type: string };

/** What each graph must offer (names and element types; contract §5.2). */
function requiredIo(module: ModuleName, layers: number): { inputs: Spec[]; outputs: Spec[] } {
  const f = (name: string): Spec => ({ name, type: 'float32' });
  const i = (name: string): Spec => ({ name, type: 'int64' });
  switch (module) {
    case 'vision_encoder':
      return { inputs: [f('pixel_values')], outputs: [f('image_features')] };
    case 'embed_tokens':
      return { inputs: [i('input_ids')], outputs: [f('inputs_embeds')] };
    case 'encoder_model':
      return { inputs: [i('attention_mask'), f('inputs_embeds')], outputs: [f('last_hidden_state')] };
    case 'decoder_model_merged': {
      const past: Spec[] = [];
      const present: Spec[] = [];
      for (let l = 0; l < layers; l++) {
        for (const part of ['decoder', 'encoder']) {
          for (const kv of ['key', 'value']) {
            past.push(f(`past_key_values.${l}.${part}.${kv}`));
            present.push(f(`present.${l}.${part}.${kv}`));
          }
        }
      }
      return {
        inputs: [
          i('encoder_attention_mask'),
          f('encoder_hidden_states'),
          f('inputs_embeds'),
          ...past,
          { name: 'use_cache_branch', type: 'bool' },
        ],
        outputs: [f('logits'), ...present],
      };
    }
  }
}

/**
 * The operator onnxruntime could not run, from its load error: a kernel missing for these types on
 * these providers ("Could not find an implementation for ConvInteger(10) node with name '...'"),
 * or an operator it does not know ("com.microsoft:MatMulBnb4(-1) is not a registered function/op",
 * "No Op registered for X").
 */
export function unsupportedOperator(message: string): { op: string; node?: string } | null {
  const kernel = /Could not find an implementation for ([\w.:]+)\((\d+)\) node with name '([^']*)'/.exec(message);
  if (kernel) return { op: `${kernel[1]} (opset ${kernel[2]})`, node: kernel[3] };
  const unregistered = /([\w.]+:)?(\w+)\(-?\d+\) is not a registered function\/op/.exec(message);
  if (unregistered) return { op: `${unregistered[1] ?? ''}${unregistered[2]}` };
  const noSchema = /No Op registered for (\w+)/.exec(message);
  return noSchema ? { op: noSchema[1] } : null;
}

/** A load error that names the module, its dtype, the file and, where onnxruntime gave one, the operator. */
function loadFailure(module: ModuleName, dtype: string, file: string, providers: string[], err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const op = unsupportedOperator(message);
  const head = `cannot load ${module} (dtype ${dtype}) from ${file}`;
  if (op === null) return `${head}: ${message}`;
  return (
    `${head}: onnxruntime ${ort.env.versions.common} on ${providers.join(', ')} cannot run operator ${op.op}` +
    `${op.node ? ` (node ${op.node})` : ''}: this variant needs a kernel this build lacks; ` +
    `${dtype === 'fp32' ? 'try another execution provider or onnxruntime build' : `load ${module} with another dtype (fp32 runs everywhere)`}. ` +
    `onnxruntime said: ${message.split('\n')[0]}`
  );
}

function checkIo(file: string, session: ort.InferenceSession, module: ModuleName, layers: number): void {
  const want = requiredIo(module, layers);
  const problems: string[] = [];
  const check = (kind: 'input' | 'output', have: readonly ort.InferenceSession.ValueMetadata[], need: Spec[]) => {
    const byName = new Map(have.map((m) => [m.name, m]));
    for (const s of need) {
      const m = byName.get(s.name);
      if (!m) problems.push(`missing ${kind} "${s.name}"`);
      else if (m.isTensor && m.type !== s.type) problems.push(`${kind} "${s.name}" is ${m.type}, expected ${s.type}`);
    }
  };
  check('input', session.inputMetadata, want.inputs);
  check('output', session.outputMetadata, want.outputs);
  if (problems.length > 0) {
    throw new ModelLoadError(
      `${file} is not a Florence-2 ${module} graph: ${problems.slice(0, 6).join('; ')}${problems.length > 6 ? `; and ${problems.length - 6} more` : ''}`,
    );
  }
}

interface OrtCache extends KvCache {
  /** present.{l}.decoder.{key,value}, [rows, H, length, Dh], 2 per layer */
  self: ort.Tensor[];
  /** cross-attention K/V from the first step, [rows, H, S, Dh], 2 per layer */
  cross: ort.Tensor[];
  /** The encoder item of each row when `cross` was laid out. */
  crossItems: number[];
}

/** Encoder states laid out per decoder row, kept while the row layout stays the same. */
interface RowLayout {
  key: string;
  states: ort.Tensor;
  mask: ort.Tensor;
}

function gatherRows(t: ort.Tensor, rows: number[]): ort.Tensor {
  const [, ...rest] = t.dims;
  const rowSize = rest.reduce((a, b) => a * b, 1);
  const src = t.data as Float32Array;
  const out = new Float32Array(rows.length * rowSize);
  rows.forEach((r, i) => out.set(src.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
  return new ort.Tensor('float32', out, [rows.length, ...rest]);
}

export class OrtBackend implements ModelBackend {
  private readonly layouts = new WeakMap<EncoderStates, RowLayout>();

  private constructor(
    readonly dims: ModelDims,
    private readonly sessions: Record<ModuleName, ort.InferenceSession>,
    readonly files: Record<ModuleName, string>,
  ) {}

  /** Opens the sessions of `dir` for a model of `dims` (from config.json) and checks their I/O. */
  static async open(dir: string, dims: ModelDims, options: OrtBackendOptions = {}): Promise<OrtBackend> {
    const files = Object.fromEntries(MODULES.map((m) => [m, moduleFile(dir, m, options.dtype)])) as Record<ModuleName, string>;
    const missing = MODULES.filter((m) => !existsSync(files[m]));
    if (missing.length > 0)
      throw new ModelLoadError(`${dir} is not a Florence-2 ONNX folder: missing ${missing.map((m) => files[m]).join(', ')}`);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: options.executionProviders ?? ['cpu'],
      intraOpNumThreads: options.intraOpNumThreads ?? availableParallelism(),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableCpuMemArena: options.cpuMemoryArena ?? true,
    };
    const sessions = {} as Record<ModuleName, ort.InferenceSession>;
    try {
      for (const m of MODULES) {
        try {
          sessions[m] = await ort.InferenceSession.create(files[m], sessionOptions);
        } catch (err) {
          const providers = (sessionOptions.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name));
          throw new ModelLoadError(loadFailure(m, moduleDtype(options.dtype, m), files[m], providers, err));
        }
        checkIo(files[m], sessions[m], m, dims.decoderLayers);
      }
      const past = sessions.decoder_model_merged.inputMetadata.find((x) => x.name === 'past_key_values.0.decoder.key');
      if (past?.isTensor) {
        const [, heads, , headDim] = past.shape;
        if ((typeof heads === 'number' && heads !== dims.decoderHeads) || (typeof headDim === 'number' && headDim !== dims.headDim)) {
          throw new ModelLoadError(
            `${files.decoder_model_merged}: cache shape [${past.shape.join(', ')}] does not match config.json (${dims.decoderHeads} heads of ${dims.headDim})`,
          );
        }
      }
    } catch (err) {
      await Promise.all(Object.values(sessions).map((s) => s.release()));
      throw err;
    }
    return new OrtBackend(dims, sessions, files);
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.sessions).map((s) => s.release()));
  }

  async encodeImages(
    pixels: Float32Array,
    batch: number,
    height: number,
    width: number,
  ): Promise<{ features: Float32Array; tokens: number }> {
    const out = await this.sessions.vision_encoder.run({ pixel_values: new ort.Tensor('float32', pixels, [batch, 3, height, width]) });
    const f = out.image_features;
    return { features: f.data as Float32Array, tokens: f.dims[1] };
  }

  async embed(ids: BigInt64Array, batch: number, length: number): Promise<Float32Array> {
    const out = await this.sessions.embed_tokens.run({ input_ids: new ort.Tensor('int64', ids, [batch, length]) });
    return out.inputs_embeds.data as Float32Array;
  }

  async encode(embeds: Float32Array, mask: BigInt64Array, batch: number, length: number): Promise<Float32Array> {
    const out = await this.sessions.encoder_model.run({
      inputs_embeds: new ort.Tensor('float32', embeds, [batch, length, this.dims.dModel]),
      attention_mask: new ort.Tensor('int64', mask, [batch, length]),
    });
    return out.last_hidden_state.data as Float32Array;
  }

  /** Encoder states and mask repeated for the decoder rows (built once per row layout, not per step). */
  private layout(encoder: EncoderStates, rowItems: number[]): RowLayout {
    const key = rowItems.join(',');
    const known = this.layouts.get(encoder);
    if (known && known.key === key) return known;
    const S = encoder.length;
    const D = this.dims.dModel;
    const R = rowItems.length;
    const states = new Float32Array(R * S * D);
    const mask = new BigInt64Array(R * S);
    rowItems.forEach((b, r) => {
      states.set(encoder.states.subarray(b * S * D, (b + 1) * S * D), r * S * D);
      mask.set(encoder.mask.subarray(b * S, (b + 1) * S), r * S);
    });
    const made = { key, states: new ort.Tensor('float32', states, [R, S, D]), mask: new ort.Tensor('int64', mask, [R, S]) };
    this.layouts.set(encoder, made);
    return made;
  }

  /** Milliseconds inside `session.run` for decoder steps (token embedding and decoder), since open. */
  decoderRunMs = 0;

  async decode(input: DecoderStepInput): Promise<DecoderStepOutput> {
    const R = input.rowItems.length;
    const { dModel: D, decoderLayers: L, decoderHeads: H, headDim: Dh } = this.dims;
    const e0 = performance.now();
    const embeds = await this.embed(input.tokens, R, 1);
    this.decoderRunMs += performance.now() - e0;
    const layout = this.layout(input.encoder, input.rowItems);
    const cache = input.cache as OrtCache | null;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [R, 1, D]),
      encoder_hidden_states: layout.states,
      encoder_attention_mask: layout.mask,
      use_cache_branch: new ort.Tensor('bool', Uint8Array.of(cache ? 1 : 0), [1]),
    };
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [R, H, 0, Dh]);
    for (let l = 0; l < L; l++) {
      feeds[`past_key_values.${l}.decoder.key`] = cache ? cache.self[2 * l] : empty();
      feeds[`past_key_values.${l}.decoder.value`] = cache ? cache.self[2 * l + 1] : empty();
      feeds[`past_key_values.${l}.encoder.key`] = cache ? cache.cross[2 * l] : empty();
      feeds[`past_key_values.${l}.encoder.value`] = cache ? cache.cross[2 * l + 1] : empty();
    }
    const d0 = performance.now();
    const out = await this.sessions.decoder_model_merged.run(feeds);
    this.decoderRunMs += performance.now() - d0;
    const self: ort.Tensor[] = [];
    const cross: ort.Tensor[] = [];
    for (let l = 0; l < L; l++) {
      self.push(out[`present.${l}.decoder.key`], out[`present.${l}.decoder.value`]);
      // With a cache the merged export returns empty constants here: keep the first step's tensors.
      cross.push(
        cache ? cache.cross[2 * l] : out[`present.${l}.encoder.key`],
        cache ? cache.cross[2 * l + 1] : out[`present.${l}.encoder.value`],
      );
    }
    const next: OrtCache = { rows: R, length: self[0].dims[2], self, cross, crossItems: cache ? cache.crossItems : [...input.rowItems] };
    return { logits: out.logits.data as Float32Array, cache: next };
  }

  selectRows(cache: KvCache, rows: number[], rowItems: number[]): KvCache {
    const c = cache as OrtCache;
    const self = c.self.map((t) => gatherRows(t, rows));
    // Beams of one image share identical cross-attention K/V: reuse them while each row keeps its image.
    const sameItems = rowItems.length === c.crossItems.length && rowItems.every((b, i) => b === c.crossItems[i]);
    const cross = sameItems ? c.cross : c.cross.map((t) => gatherRows(t, rows));
    return { rows: rows.length, length: c.length, self, cross, crossItems: sameItems ? c.crossItems : [...rowItems] } as OrtCache;
  }
}
