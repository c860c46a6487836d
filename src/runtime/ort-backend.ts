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
import { copyRows, RowGatherer } from './row-gather';
import { TransferLedger } from './transfers';

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
  /**
   * Where the decoder state stays between steps. `device` (the default on webgpu) keeps K/V caches
   * and encoder states in GPU buffers: per step only token ids go in and logits come out. `host`
   * (the default elsewhere, and the only choice for CUDA, whose outputs onnxruntime-node returns
   * to the host) feeds host tensors at every step.
   */
  decoderState?: DecoderStateLocation;
  /** Row gathers of host state: `copy` (default, faster on CPU's large gathers) or `graph`. Device state always uses graphs. */
  rowOps?: RowOps;
  /** Keep per-step transfer counts in `transfers.steps` (benchmarks, tests). */
  recordTransfers?: boolean;
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

/** Where the decoder's state (K/V caches, encoder states per row) stays between steps. */
export type DecoderStateLocation = 'host' | 'device';

/** How rows of host-resident state are gathered: typed-array copies, or the Gather graph on the CPU provider. */
export type RowOps = 'copy' | 'graph';

/**
 * Row gathers of host tensors: JavaScript copies were faster than the Gather graph on the CPU
 * provider for the large gathers (a long cache, the cross K/V) and 10% slower on the smallest
 * (`npm run bench -- --transfers`, README "GPU serving path"), so they are the default.
 */
export const DEFAULT_HOST_ROW_OPS: RowOps = 'copy';

/** Encoder states as the decoder reads them: the batch as given (`base`), and laid out per decoder row. */
interface EncoderRows {
  readonly source: EncoderStates;
  readonly base: { states: ort.Tensor; mask: ort.Tensor };
  /** The row items `states` and `mask` are laid out for. */
  key: string;
  states: ort.Tensor;
  mask: ort.Tensor;
}

/**
 * The decoder state of one generation. A cache is consumed by the call it is passed to (`decode`,
 * `selectRows`, `releaseCache`): the tensors it hands on move to the cache returned, the rest are
 * released, so device buffers never outlive the rows that use them.
 */
interface OrtCache extends KvCache {
  /** present.{l}.decoder.{key,value}, [rows, H, length, Dh], 2 per layer */
  self: ort.Tensor[];
  /** cross-attention K/V from the first step, [rows, H, S, Dh], 2 per layer */
  cross: ort.Tensor[];
  /** The encoder item of each row when `cross` was laid out. */
  crossItems: number[];
  encoder: EncoderRows;
}

const providerName = (p: ort.InferenceSession.ExecutionProviderConfig | undefined): string =>
  p === undefined ? 'cpu' : typeof p === 'string' ? p : p.name;

const identityKey = (n: number): string => Array.from({ length: n }, (_, i) => i).join(',');

export class OrtBackend implements ModelBackend {
  /** Milliseconds inside `session.run` for decoder steps (token embedding and decoder), since open. */
  decoderRunMs = 0;
  /** Tensors held by live caches (decoder state and encoder layouts), released as rows leave. */
  private readonly owned = new Set<ort.Tensor>();
  /** Decoder outputs a step after the first needs: with a cache, the merged export's cross outputs are empty constants. */
  private readonly stepFetches: string[];

  private constructor(
    readonly dims: ModelDims,
    private readonly sessions: Record<ModuleName, ort.InferenceSession>,
    readonly files: Record<ModuleName, string>,
    readonly decoderState: DecoderStateLocation,
    readonly rowOps: RowOps,
    /** Graph row gathers: on the model's provider for device state, on the CPU provider for host state. */
    private readonly gatherer: RowGatherer | null,
    /** Device state: token embeddings of a step, left on the device for the decoder. */
    private readonly stepEmbed: ort.InferenceSession | null,
    /** Bytes that crossed `session.run` in host memory (README "GPU serving path"). */
    readonly transfers: TransferLedger,
  ) {
    this.stepFetches = ['logits'];
    for (let l = 0; l < dims.decoderLayers; l++) this.stepFetches.push(`present.${l}.decoder.key`, `present.${l}.decoder.value`);
  }

  /** Opens the sessions of `dir` for a model of `dims` (from config.json) and checks their I/O. */
  static async open(dir: string, dims: ModelDims, options: OrtBackendOptions = {}): Promise<OrtBackend> {
    const files = Object.fromEntries(MODULES.map((m) => [m, moduleFile(dir, m, options.dtype)])) as Record<ModuleName, string>;
    const missing = MODULES.filter((m) => !existsSync(files[m]));
    if (missing.length > 0)
      throw new ModelLoadError(`${dir} is not a Florence-2 ONNX folder: missing ${missing.map((m) => files[m]).join(', ')}`);
    const executionProviders = options.executionProviders ?? ['cpu'];
    const provider = providerName(executionProviders[0]);
    const decoderState = options.decoderState ?? (provider === 'webgpu' ? 'device' : 'host');
    if (decoderState === 'device' && provider !== 'webgpu')
      throw new ModelLoadError(
        `decoder state on the device needs the webgpu execution provider: onnxruntime-node returns ${provider} outputs to the host`,
      );
    if (decoderState === 'device' && options.rowOps === 'copy')
      throw new ModelLoadError('rowOps "copy" works on host tensors: decoder state on the device is gathered by graphs');
    const rowOps = decoderState === 'device' ? 'graph' : (options.rowOps ?? DEFAULT_HOST_ROW_OPS);
    const intraOpNumThreads = options.intraOpNumThreads ?? availableParallelism();
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders,
      intraOpNumThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableCpuMemArena: options.cpuMemoryArena ?? true,
    };
    const onDevice = (outputs: Record<string, ort.Tensor.DataLocation>): ort.InferenceSession.SessionOptions =>
      decoderState === 'device' ? { ...sessionOptions, preferredOutputLocation: outputs } : sessionOptions;
    const decoderOutputs: Record<string, ort.Tensor.DataLocation> = { logits: 'cpu' };
    for (let l = 0; l < dims.decoderLayers; l++)
      for (const part of ['decoder', 'encoder'])
        for (const kv of ['key', 'value']) decoderOutputs[`present.${l}.${part}.${kv}`] = 'gpu-buffer';
    const providers = executionProviders.map(providerName);
    const sessions = {} as Record<ModuleName, ort.InferenceSession>;
    let stepEmbed: ort.InferenceSession | null = null;
    try {
      for (const m of MODULES) {
        try {
          sessions[m] = await ort.InferenceSession.create(
            files[m],
            m === 'decoder_model_merged' ? onDevice(decoderOutputs) : sessionOptions,
          );
        } catch (err) {
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
      if (decoderState === 'device') {
        try {
          stepEmbed = await ort.InferenceSession.create(files.embed_tokens, onDevice({ inputs_embeds: 'gpu-buffer' }));
        } catch (err) {
          throw new ModelLoadError(
            loadFailure('embed_tokens', moduleDtype(options.dtype, 'embed_tokens'), files.embed_tokens, providers, err),
          );
        }
      }
    } catch (err) {
      await Promise.all([...Object.values(sessions), ...(stepEmbed ? [stepEmbed] : [])].map((s) => s.release()));
      throw err;
    }
    const transfers = new TransferLedger(options.recordTransfers ?? false);
    const observe = (feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor>) => transfers.count('decoder', feeds, outputs);
    const gatherer =
      decoderState === 'device'
        ? new RowGatherer(sessionOptions, 'gpu-buffer', observe)
        : rowOps === 'graph'
          ? new RowGatherer({ ...sessionOptions, executionProviders: ['cpu'] }, 'cpu', observe)
          : null;
    return new OrtBackend(dims, sessions, files, decoderState, rowOps, gatherer, stepEmbed, transfers);
  }

  async release(): Promise<void> {
    await Promise.all([...Object.values(this.sessions), ...(this.stepEmbed ? [this.stepEmbed] : [])].map((s) => s.release()));
    await this.gatherer?.release();
  }

  /** Tensors held by caches not yet released (0 between generations: nothing leaks). */
  get liveTensors(): number {
    return this.owned.size;
  }

  private async run(
    phase: 'prefill' | 'decoder',
    session: ort.InferenceSession,
    feeds: Record<string, ort.Tensor>,
    fetches?: readonly string[],
  ): Promise<Record<string, ort.Tensor>> {
    const out = (fetches ? await session.run(feeds, fetches) : await session.run(feeds)) as Record<string, ort.Tensor>;
    this.transfers.count(phase, feeds, out);
    return out;
  }

  private adopt<T extends ort.Tensor>(t: T): T {
    this.owned.add(t);
    return t;
  }

  private drop(t: ort.Tensor): void {
    if (this.owned.delete(t)) t.dispose();
  }

  async encodeImages(
    pixels: Float32Array,
    batch: number,
    height: number,
    width: number,
  ): Promise<{ features: Float32Array; tokens: number }> {
    const out = await this.run('prefill', this.sessions.vision_encoder, {
      pixel_values: new ort.Tensor('float32', pixels, [batch, 3, height, width]),
    });
    const f = out.image_features;
    return { features: f.data as Float32Array, tokens: f.dims[1] };
  }

  async embed(ids: BigInt64Array, batch: number, length: number): Promise<Float32Array> {
    const out = await this.run('prefill', this.sessions.embed_tokens, { input_ids: new ort.Tensor('int64', ids, [batch, length]) });
    return out.inputs_embeds.data as Float32Array;
  }

  async encode(embeds: Float32Array, mask: BigInt64Array, batch: number, length: number): Promise<Float32Array> {
    const out = await this.run('prefill', this.sessions.encoder_model, {
      inputs_embeds: new ort.Tensor('float32', embeds, [batch, length, this.dims.dModel]),
      attention_mask: new ort.Tensor('int64', mask, [batch, length]),
    });
    return out.last_hidden_state.data as Float32Array;
  }

  /** `tensors` with their rows picked by `rows`, as owned tensors where they live. */
  private async gatherRows(tensors: ort.Tensor[], rows: number[]): Promise<ort.Tensor[]> {
    const out = this.gatherer ? await this.gatherer.gather(tensors, rows) : tensors.map((t) => copyRows(t, rows));
    return out.map((t) => this.adopt(t));
  }

  /** The encoder batch where the decoder reads it, laid out for `rowItems` (once per generation and layout, not per step). */
  private async encoderRows(source: EncoderStates, rowItems: number[]): Promise<EncoderRows> {
    const { batch: B, length: S } = source;
    const states = new ort.Tensor('float32', source.states.subarray(0, B * S * this.dims.dModel), [B, S, this.dims.dModel]);
    const mask = new ort.Tensor('int64', source.mask.subarray(0, B * S), [B, S]);
    // On the device the batch is uploaded once (an identity gather); later layouts gather from it there.
    const [baseStates, baseMask] =
      this.decoderState === 'device' ? await this.gatherRows([states, mask], [...Array(B).keys()]) : [this.adopt(states), this.adopt(mask)];
    const encoder: EncoderRows = {
      source,
      base: { states: baseStates, mask: baseMask },
      key: identityKey(B),
      states: baseStates,
      mask: baseMask,
    };
    try {
      await this.relayout(encoder, rowItems);
    } catch (err) {
      this.releaseEncoder(encoder);
      throw err;
    }
    return encoder;
  }

  private async relayout(encoder: EncoderRows, rowItems: number[]): Promise<void> {
    const key = rowItems.join(',');
    if (key === encoder.key) return;
    const { base } = encoder;
    const [states, mask] =
      key === identityKey(encoder.source.batch) ? [base.states, base.mask] : await this.gatherRows([base.states, base.mask], rowItems);
    if (encoder.states !== base.states) this.drop(encoder.states);
    if (encoder.mask !== base.mask) this.drop(encoder.mask);
    Object.assign(encoder, { key, states, mask });
  }

  private releaseEncoder(encoder: EncoderRows): void {
    for (const t of [encoder.states, encoder.mask, encoder.base.states, encoder.base.mask]) this.drop(t);
  }

  releaseCache(cache: KvCache): void {
    const c = cache as OrtCache;
    for (const t of [...c.self, ...c.cross]) this.drop(t);
    this.releaseEncoder(c.encoder);
  }

  /** Token embeddings of one step: on the device for device state, else from the host path. */
  private async stepEmbeds(tokens: BigInt64Array, rows: number): Promise<ort.Tensor> {
    const input_ids = new ort.Tensor('int64', tokens, [rows, 1]);
    const session = this.stepEmbed ?? this.sessions.embed_tokens;
    const out = await this.run('decoder', session, { input_ids });
    return this.adopt(out.inputs_embeds);
  }

  async decode(input: DecoderStepInput): Promise<DecoderStepOutput> {
    const R = input.rowItems.length;
    const { decoderLayers: L, decoderHeads: H, headDim: Dh } = this.dims;
    const cache = input.cache as OrtCache | null;
    let encoder: EncoderRows | null = cache?.encoder ?? null;
    try {
      if (cache && cache.encoder.source !== input.encoder) throw new Error('a decoder cache went on with other encoder states');
      if (encoder) await this.relayout(encoder, input.rowItems);
      else encoder = await this.encoderRows(input.encoder, input.rowItems);
      const e0 = performance.now();
      const embeds = await this.stepEmbeds(input.tokens, R);
      this.decoderRunMs += performance.now() - e0;
      const feeds: Record<string, ort.Tensor> = {
        inputs_embeds: embeds,
        encoder_hidden_states: encoder.states,
        encoder_attention_mask: encoder.mask,
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
      let out: Record<string, ort.Tensor>;
      try {
        // Host state fetches only what a step needs. Device state fetches every output: with outputs
        // bound to GPU buffers, onnxruntime-node 1.30 fails a run that leaves some out (the If node's
        // "output OrtValue provided ... has shape" error), so the unused ones are disposed below.
        const fetches = cache && this.decoderState === 'host' ? this.stepFetches : undefined;
        out = await this.run('decoder', this.sessions.decoder_model_merged, feeds, fetches);
      } finally {
        this.drop(embeds);
      }
      this.decoderRunMs += performance.now() - d0;
      const self: ort.Tensor[] = [];
      const cross: ort.Tensor[] = [];
      for (let l = 0; l < L; l++) {
        self.push(this.adopt(out[`present.${l}.decoder.key`]), this.adopt(out[`present.${l}.decoder.value`]));
        // With a cache the merged export returns empty constants here (not fetched): keep the first step's tensors.
        const crossOut = [out[`present.${l}.encoder.key`], out[`present.${l}.encoder.value`]];
        if (!cache) cross.push(...crossOut.map((t) => this.adopt(t)));
        else for (const t of crossOut) t?.dispose();
      }
      if (cache) for (const t of cache.self) this.drop(t);
      this.transfers.endStep(R, cache === null);
      const next: OrtCache = {
        rows: R,
        length: self[0].dims[2],
        self,
        cross: cache ? cache.cross : cross,
        crossItems: cache ? cache.crossItems : [...input.rowItems],
        encoder,
      };
      return { logits: out.logits.data as Float32Array, cache: next };
    } catch (err) {
      if (cache) this.releaseCache(cache);
      else if (encoder) this.releaseEncoder(encoder);
      throw err;
    }
  }

  async selectRows(cache: KvCache, rows: number[], rowItems: number[]): Promise<KvCache> {
    const c = cache as OrtCache;
    // Beams of one image share identical cross-attention K/V: reuse them while each row keeps its image.
    const sameItems = rowItems.length === c.crossItems.length && rowItems.every((b, i) => b === c.crossItems[i]);
    let gathered: ort.Tensor[];
    try {
      gathered = await this.gatherRows(sameItems ? c.self : [...c.self, ...c.cross], rows);
    } catch (err) {
      this.releaseCache(c);
      throw err;
    }
    for (const t of c.self) this.drop(t);
    if (!sameItems) for (const t of c.cross) this.drop(t);
    const self = gathered.slice(0, c.self.length);
    const cross = sameItems ? c.cross : gathered.slice(c.self.length);
    const next: OrtCache = {
      rows: rows.length,
      length: c.length,
      self,
      cross,
      crossItems: sameItems ? c.crossItems : [...rowItems],
      encoder: c.encoder,
    };
    return next;
  }
}
