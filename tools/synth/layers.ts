/** Building blocks shared by the language-model and vision graphs. */
import { DataType, type GraphBuilder, float, int, ints } from './onnx-graph';

/** torch.finfo(float32).min: what HF adds to masked attention scores. */
export const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * Supplies the data of each weight by name. Random and scripted models differ only here; the
 * graphs are the same.
 */
export interface WeightSource {
  tensor(name: string, dims: number[], init: WeightInit): () => Float32Array;
}

/** How a weight is initialised when nothing overrides it. */
export type WeightInit = { kind: 'normal'; std: number; mean?: number } | { kind: 'const'; value: number };

/**
 * Random query projections are this much larger than other projections: attention of untrained
 * weights is otherwise nearly uniform, and a random model's output would barely depend on the image
 * or the prompt, which would make parity tests weak.
 */
const QUERY_GAIN = 4;

/** x @ W + b with W stored as [in, out] (the layout MatMul wants). */
export function linear(
  g: GraphBuilder,
  root: GraphBuilder,
  w: WeightSource,
  x: string,
  name: string,
  inDim: number,
  outDim: number,
): string {
  const gain = name.endsWith('q_proj') ? QUERY_GAIN : 1;
  const weight = w.tensor(`${name}.weight`, [inDim, outDim], { kind: 'normal', std: gain / Math.sqrt(inDim) });
  const product = root.matMulWeight(g, x, `${name}.weight`, inDim, outDim, weight);
  const bias = root.weight(`${name}.bias`, [outDim], w.tensor(`${name}.bias`, [outDim], { kind: 'normal', std: 0.02 }));
  return g.op('Add', [product, bias]);
}

export function layerNorm(g: GraphBuilder, root: GraphBuilder, w: WeightSource, x: string, name: string, dim: number): string {
  const gamma = root.weight(`${name}.weight`, [dim], w.tensor(`${name}.weight`, [dim], { kind: 'normal', mean: 1, std: 0.05 }));
  const beta = root.weight(`${name}.bias`, [dim], w.tensor(`${name}.bias`, [dim], { kind: 'normal', std: 0.02 }));
  return g.op('LayerNormalization', [x, gamma, beta], { axis: int(-1), epsilon: float(1e-5) });
}

/** Exact (erf) GELU, BART's `activation_function: gelu`. Opset 17 has no Gelu op; ORT fuses this pattern. */
export function gelu(g: GraphBuilder, x: string): string {
  const scaled = g.op('Div', [x, g.constF32([Math.SQRT2], [])]);
  const erf = g.op('Erf', [scaled]);
  const onePlus = g.op('Add', [erf, g.constF32([1], [])]);
  return g.op('Mul', [g.op('Mul', [x, onePlus]), g.constF32([0.5], [])]);
}

/** [B, T, H*Dh] → [B, H, T, Dh] */
export function splitHeads(g: GraphBuilder, x: string, heads: number, headDim: number): string {
  const r = g.op('Reshape', [x, g.constI64([0, 0, heads, headDim])]);
  return g.op('Transpose', [r], { perm: ints([0, 2, 1, 3]) });
}

/** [B, H, T, Dh] → [B, T, H*Dh] */
export function mergeHeads(g: GraphBuilder, x: string, dim: number): string {
  const t = g.op('Transpose', [x], { perm: ints([0, 2, 1, 3]) });
  return g.op('Reshape', [t, g.constI64([0, 0, dim])]);
}

/** softmax(q kᵀ + mask) v, with q already scaled; `mask` is additive and broadcasts to [B, H, Tq, Tk]. */
export function attend(g: GraphBuilder, q: string, k: string, v: string, mask: string | null): string {
  const kT = g.op('Transpose', [k], { perm: ints([0, 1, 3, 2]) });
  let scores = g.op('MatMul', [q, kT]);
  if (mask) scores = g.op('Add', [scores, mask]);
  return g.op('MatMul', [g.op('Softmax', [scores], { axis: int(-1) }), v]);
}

/** An int64 [B, S] 0/1 mask → additive float [B, 1, 1, S] (0 where attended, float32 min where masked). */
export function paddingMask(g: GraphBuilder, mask: string): string {
  const m = g.op('Cast', [mask], { to: int(DataType.FLOAT) });
  const inverted = g.op('Sub', [g.constF32([1], []), m]);
  const additive = g.op('Mul', [inverted, g.constF32([FLOAT32_MIN], [])]);
  return g.op('Unsqueeze', [additive, g.constI64([1, 2])]);
}

/** Dimension `axis` of `x` as an int64 scalar. */
export function dimOf(g: GraphBuilder, x: string, axis: number): string {
  const shape = g.op('Shape', [x]);
  return g.op('Gather', [shape, g.constI64([axis], [])], { axis: int(0) });
}
