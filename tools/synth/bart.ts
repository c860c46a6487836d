/**
 * The Florence-2 language model as the onnx-community export splits it (contract §5): `embed_tokens`,
 * `encoder_model`, `decoder_model` (no cache) and `decoder_model_merged` (one `If` on
 * `use_cache_branch`). The network is a faithful BART: learned positions offset by 2, embedding
 * LayerNorm, post-LayerNorm layers, exact GELU, tied LM head plus `final_logits_bias`.
 */
import { DataType, GraphBuilder, type WeightFormat, graphAttr, int } from './onnx-graph';
import { FLOAT32_MIN, type WeightSource, attend, dimOf, gelu, layerNorm, linear, mergeHeads, paddingMask, splitHeads } from './layers';
import { POSITION_OFFSET, type TextConfig, VOCAB_SIZE } from './sizes';

const HEAD_DIM_OF = (c: TextConfig) => c.dModel / c.decoderHeads;

/** Tensor names (HF parameter names; matrices are stored [in, out]). */
export const W = {
  shared: 'language_model.model.shared.weight',
  lmHead: 'language_model.lm_head.weight',
  finalLogitsBias: 'language_model.final_logits_bias',
  encPositions: 'language_model.model.encoder.embed_positions.weight',
  decPositions: 'language_model.model.decoder.embed_positions.weight',
  enc: (i: number) => `language_model.model.encoder.layers.${i}`,
  dec: (i: number) => `language_model.model.decoder.layers.${i}`,
  encEmbLn: 'language_model.model.encoder.layernorm_embedding',
  decEmbLn: 'language_model.model.decoder.layernorm_embedding',
};

/** Standard deviation of the token embedding: makes random-model logits spread by a few nats, so greedy picks are not near-ties. */
export const embeddingStd = (c: TextConfig) => 3 / Math.sqrt(c.dModel);

/** Rows `ids` of the shared token embedding. */
function embedTokens(g: GraphBuilder, w: WeightSource, c: TextConfig, ids: string): string {
  const dims = [VOCAB_SIZE, c.dModel];
  return g.gatherWeight(g, W.shared, dims, w.tensor(W.shared, dims, { kind: 'normal', std: embeddingStd(c) }), ids);
}

/** `embed_tokens`: input_ids → raw token embeddings (BART with scale_embedding false: no scaling). */
export function buildEmbedTokens(c: TextConfig, w: WeightSource, format: WeightFormat): GraphBuilder {
  const g = new GraphBuilder('embed_tokens', { format });
  const ids = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  g.output('inputs_embeds', DataType.FLOAT, ['batch_size', 'sequence_length', c.dModel], embedTokens(g, w, c, ids));
  return g;
}

/** A learned position table declared on `root`: looks up rows in a graph (`root` or one of its branches). */
type PositionTable = (g: GraphBuilder, ids: string) => string;

function positionTable(root: GraphBuilder, w: WeightSource, name: string, c: TextConfig): PositionTable {
  const dims = [c.maxPositions + POSITION_OFFSET, c.dModel];
  const data = w.tensor(name, dims, { kind: 'normal', std: 0.5 });
  return (g, ids) => root.gatherWeight(g, name, dims, data, ids);
}

/** Learned positions for `count` tokens starting at `start` (both int64 scalars): [count, D]. */
function positions(g: GraphBuilder, table: PositionTable, start: string, count: string): string {
  const offset = g.constI64([POSITION_OFFSET], []);
  const from = g.op('Add', [start, offset]);
  const to = g.op('Add', [g.op('Add', [start, count]), offset]);
  const ids = g.op('Range', [from, to, g.constI64([1], [])]);
  return table(g, ids);
}

/** `encoder_model`: [image features ; prompt embeddings] → last_hidden_state. */
export function buildEncoder(c: TextConfig, w: WeightSource, format: WeightFormat): GraphBuilder {
  const g = new GraphBuilder('encoder_model', { format });
  const D = c.dModel;
  const headDim = D / c.encoderHeads;
  const mask = g.input('attention_mask', DataType.INT64, ['batch_size', 'encoder_sequence_length']);
  const embeds = g.input('inputs_embeds', DataType.FLOAT, ['batch_size', 'encoder_sequence_length', D]);

  const table = positionTable(g, w, W.encPositions, c);
  const pos = positions(g, table, g.constI64([0], []), dimOf(g, embeds, 1));
  let h = layerNorm(g, g, w, g.op('Add', [embeds, pos]), W.encEmbLn, D);
  const additiveMask = paddingMask(g, mask);
  const scale = g.constF32([headDim ** -0.5], []);

  for (let i = 0; i < c.encoderLayers; i++) {
    const p = W.enc(i);
    const q = splitHeads(g, g.op('Mul', [linear(g, g, w, h, `${p}.self_attn.q_proj`, D, D), scale]), c.encoderHeads, headDim);
    const k = splitHeads(g, linear(g, g, w, h, `${p}.self_attn.k_proj`, D, D), c.encoderHeads, headDim);
    const v = splitHeads(g, linear(g, g, w, h, `${p}.self_attn.v_proj`, D, D), c.encoderHeads, headDim);
    const a = linear(g, g, w, mergeHeads(g, attend(g, q, k, v, additiveMask), D), `${p}.self_attn.out_proj`, D, D);
    h = layerNorm(g, g, w, g.op('Add', [h, a]), `${p}.self_attn_layer_norm`, D);
    const f = linear(g, g, w, gelu(g, linear(g, g, w, h, `${p}.fc1`, D, c.encoderFfn)), `${p}.fc2`, c.encoderFfn, D);
    h = layerNorm(g, g, w, g.op('Add', [h, f]), `${p}.final_layer_norm`, D);
  }
  g.output('last_hidden_state', DataType.FLOAT, ['batch_size', 'encoder_sequence_length', D], h);
  return g;
}

export const pastName = (i: number, part: 'decoder' | 'encoder', kv: 'key' | 'value') => `past_key_values.${i}.${part}.${kv}`;
export const presentName = (i: number, part: 'decoder' | 'encoder', kv: 'key' | 'value') => `present.${i}.${part}.${kv}`;

/** Symbolic dims of the cache tensors, following optimum's names; TJS resolves `batch_size` and zeroes the rest. */
const DIMS = {
  past: 'past_decoder_sequence_length',
  present: 'past_decoder_sequence_length + 1',
  encOut: 'encoder_sequence_length_out',
};

interface DecoderWeights {
  positions: PositionTable;
  /** `h @ lm_head` in a branch, the weight declared once on the main graph. */
  lmHead: (g: GraphBuilder, h: string) => string;
  finalLogitsBias: string;
}

/** Declares the decoder's weights on the main graph (branches of the `If` read them from there). */
function decoderWeights(root: GraphBuilder, w: WeightSource, c: TextConfig): DecoderWeights {
  return {
    positions: positionTable(root, w, W.decPositions, c),
    // Tied to the shared embedding, as in BART: the same values, stored [D, V] for MatMul.
    lmHead: (g, h) =>
      root.matMulWeight(
        g,
        h,
        W.lmHead,
        c.dModel,
        VOCAB_SIZE,
        transposed(w.tensor(W.shared, [VOCAB_SIZE, c.dModel], { kind: 'normal', std: embeddingStd(c) }), VOCAB_SIZE, c.dModel),
      ),
    finalLogitsBias: root.weight(W.finalLogitsBias, [VOCAB_SIZE], w.tensor(W.finalLogitsBias, [VOCAB_SIZE], { kind: 'normal', std: 0.1 })),
  };
}

function transposed(data: () => Float32Array, rows: number, cols: number): () => Float32Array {
  return () => {
    const src = data();
    const out = new Float32Array(src.length);
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[k * rows + r] = src[r * cols + k];
    return out;
  };
}

/**
 * One decoder pass in graph `g`. Without cache it computes cross-attention keys/values from the
 * encoder states; with cache it reads them from the past inputs and, like optimum's merged export,
 * returns empty `[0, H, 1, Dh]` constants as their presents. Returns the output value names in the
 * order [logits, present.0.decoder.key, present.0.decoder.value, present.0.encoder.key, ...].
 */
function decoderPass(g: GraphBuilder, root: GraphBuilder, w: WeightSource, c: TextConfig, dw: DecoderWeights, withPast: boolean): string[] {
  const D = c.dModel;
  const H = c.decoderHeads;
  const headDim = HEAD_DIM_OF(c);
  const embeds = 'inputs_embeds';
  const T = dimOf(g, embeds, 1);
  const pastLen = withPast ? dimOf(g, pastName(0, 'decoder', 'key'), 2) : g.constI64([0], []);

  let h = layerNorm(g, root, w, g.op('Add', [embeds, positions(g, dw.positions, pastLen, T)]), W.decEmbLn, D);

  // Causal mask [1, 1, T, past+T]: query i (at absolute position past+i) sees keys j ≤ past+i.
  const one = g.constI64([1], []);
  const zero = g.constI64([0], []);
  const qIdx = g.op('Unsqueeze', [g.op('Range', [zero, T, one]), g.constI64([1])]);
  const kIdx = g.op('Unsqueeze', [g.op('Range', [zero, g.op('Add', [pastLen, T]), one]), g.constI64([0])]);
  const future = g.op('Greater', [kIdx, g.op('Add', [qIdx, pastLen])]);
  const causal = g.op('Unsqueeze', [g.op('Where', [future, g.constF32([FLOAT32_MIN], []), g.constF32([0], [])]), g.constI64([0, 1])]);
  const crossMask = paddingMask(g, 'encoder_attention_mask');
  const scale = g.constF32([headDim ** -0.5], []);

  const presents: string[] = [];
  for (let i = 0; i < c.decoderLayers; i++) {
    const p = W.dec(i);
    // 1) causal self-attention over cache + new tokens
    const q = splitHeads(g, g.op('Mul', [linear(g, root, w, h, `${p}.self_attn.q_proj`, D, D), scale]), H, headDim);
    let k = splitHeads(g, linear(g, root, w, h, `${p}.self_attn.k_proj`, D, D), H, headDim);
    let v = splitHeads(g, linear(g, root, w, h, `${p}.self_attn.v_proj`, D, D), H, headDim);
    if (withPast) {
      k = g.op('Concat', [pastName(i, 'decoder', 'key'), k], { axis: int(2) });
      v = g.op('Concat', [pastName(i, 'decoder', 'value'), v], { axis: int(2) });
    }
    const sa = linear(g, root, w, mergeHeads(g, attend(g, q, k, v, causal), D), `${p}.self_attn.out_proj`, D, D);
    h = layerNorm(g, root, w, g.op('Add', [h, sa]), `${p}.self_attn_layer_norm`, D);

    // 2) cross-attention over the encoder states
    const cq = splitHeads(g, g.op('Mul', [linear(g, root, w, h, `${p}.encoder_attn.q_proj`, D, D), scale]), H, headDim);
    let ck: string;
    let cv: string;
    let presentCk: string;
    let presentCv: string;
    if (withPast) {
      ck = pastName(i, 'encoder', 'key');
      cv = pastName(i, 'encoder', 'value');
      presentCk = g.constantNode(DataType.FLOAT, [0, H, 1, headDim], new Float32Array(0));
      presentCv = g.constantNode(DataType.FLOAT, [0, H, 1, headDim], new Float32Array(0));
    } else {
      ck = presentCk = splitHeads(g, linear(g, root, w, 'encoder_hidden_states', `${p}.encoder_attn.k_proj`, D, D), H, headDim);
      cv = presentCv = splitHeads(g, linear(g, root, w, 'encoder_hidden_states', `${p}.encoder_attn.v_proj`, D, D), H, headDim);
    }
    const ca = linear(g, root, w, mergeHeads(g, attend(g, cq, ck, cv, crossMask), D), `${p}.encoder_attn.out_proj`, D, D);
    h = layerNorm(g, root, w, g.op('Add', [h, ca]), `${p}.encoder_attn_layer_norm`, D);

    // 3) feed-forward
    const f = linear(g, root, w, gelu(g, linear(g, root, w, h, `${p}.fc1`, D, c.decoderFfn)), `${p}.fc2`, c.decoderFfn, D);
    h = layerNorm(g, root, w, g.op('Add', [h, f]), `${p}.final_layer_norm`, D);
    presents.push(k, v, presentCk, presentCv);
  }
  const logits = g.op('Add', [dw.lmHead(g, h), dw.finalLogitsBias]);
  return [logits, ...presents];
}

function decoderInputs(g: GraphBuilder, c: TextConfig): void {
  g.input('encoder_attention_mask', DataType.INT64, ['batch_size', 'encoder_sequence_length']);
  g.input('encoder_hidden_states', DataType.FLOAT, ['batch_size', 'encoder_sequence_length', c.dModel]);
  g.input('inputs_embeds', DataType.FLOAT, ['batch_size', 'decoder_sequence_length', c.dModel]);
}

function outputNames(c: TextConfig): string[] {
  const names = ['logits'];
  for (let i = 0; i < c.decoderLayers; i++) {
    names.push(
      presentName(i, 'decoder', 'key'),
      presentName(i, 'decoder', 'value'),
      presentName(i, 'encoder', 'key'),
      presentName(i, 'encoder', 'value'),
    );
  }
  return names;
}

function outputDims(c: TextConfig, name: string, merged: boolean): (number | string)[] {
  if (name === 'logits') return ['batch_size', 'decoder_sequence_length', VOCAB_SIZE];
  const H = c.decoderHeads;
  const hd = HEAD_DIM_OF(c);
  if (name.includes('.decoder.')) return ['batch_size', H, merged ? DIMS.present : 'decoder_sequence_length', hd];
  return ['batch_size', H, merged ? DIMS.encOut : 'encoder_sequence_length', hd];
}

/** `decoder_model`: the decoder without cache (every step recomputes the whole prefix). */
export function buildDecoder(c: TextConfig, w: WeightSource, format: WeightFormat): GraphBuilder {
  const g = new GraphBuilder('decoder_model', { format });
  decoderInputs(g, c);
  const dw = decoderWeights(g, w, c);
  const values = decoderPass(g, g, w, c, dw, false);
  outputNames(c).forEach((name, i) => g.output(name, DataType.FLOAT, outputDims(c, name, false), values[i]));
  return g;
}

/** `decoder_model_merged`: both passes behind one `If` on `use_cache_branch` (optimum's merge). */
export function buildMergedDecoder(c: TextConfig, w: WeightSource, format: WeightFormat): GraphBuilder {
  const g = new GraphBuilder('decoder_model_merged', { format });
  decoderInputs(g, c);
  const H = c.decoderHeads;
  const hd = HEAD_DIM_OF(c);
  for (let i = 0; i < c.decoderLayers; i++) {
    for (const kv of ['key', 'value'] as const) g.input(pastName(i, 'decoder', kv), DataType.FLOAT, ['batch_size', H, DIMS.past, hd]);
    for (const kv of ['key', 'value'] as const) g.input(pastName(i, 'encoder', kv), DataType.FLOAT, ['batch_size', H, DIMS.encOut, hd]);
  }
  g.input('use_cache_branch', DataType.BOOL, [1]);
  const dw = decoderWeights(g, w, c);
  const names = outputNames(c);

  const branch = (label: string, withPast: boolean) => {
    const b = g.subgraph(label);
    const values = decoderPass(b, g, w, c, dw, withPast);
    names.forEach((name, i) => b.output(`${label}/${name}`, DataType.FLOAT, null, values[i]));
    return b;
  };
  g.node(
    'If',
    ['use_cache_branch'],
    { then_branch: graphAttr(branch('with_past', true)), else_branch: graphAttr(branch('no_past', false)) },
    names,
  );
  names.forEach((name) => g.output(name, DataType.FLOAT, outputDims(c, name, true)));
  return g;
}
