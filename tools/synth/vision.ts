/**
 * The vision encoder: `pixel_values [B,3,H,W]` → `image_features [B, (H/32)(W/32)+1, D]`.
 *
 * DaViT itself is not rebuilt. The stand-in keeps what decides cost and shape: DaViT's four
 * convolutional patch embeddings (same kernels, strides, widths), then per stage one MLP block in
 * place of each spatial-window and each channel-group attention block, its hidden width chosen so
 * the block costs what the attention block it replaces costs; then Florence-2's real head: learned
 * 2-D position embedding (50×50 table), mean-pooled token prepended (577 tokens at 768²), linear
 * projection to d_model and LayerNorm.
 */
import { DataType, GraphBuilder, type WeightFormat, int, ints } from './onnx-graph';
import { type WeightSource, dimOf, gelu, layerNorm, linear } from './layers';
import { type VisionConfig } from './sizes';

const MAX_POS = 50;

export interface StageCost {
  tokens: number;
  channels: number;
  /** Multiply-accumulates of the patch-embedding convolution. */
  convMacs: number;
  /** Multiply-accumulates of one spatial (window attention) block and one channel (group attention) block. */
  spatialBlockMacs: number;
  channelBlockMacs: number;
}

/** Output side of a convolution. */
const convOut = (size: number, k: number, s: number, p: number) => Math.floor((size + 2 * p - k) / s) + 1;

/**
 * DaViT's cost per stage at an `imageSize`² input, in multiply-accumulates (FLOPs = 2 × MACs),
 * counting every matrix product and convolution (norms, softmax and activations are negligible).
 * A block is: two depthwise 3×3 conv position encodings, a qkv projection (3NC²), attention, an
 * output projection (NC²) and an MLP with ratio 4 (8NC²). Window attention costs 2·N·w²·C
 * (scores and weighted sum over w² keys); channel-group attention costs 2·N·C²/G.
 */
export function davitStageCosts(v: VisionConfig, imageSize: number): StageCost[] {
  const costs: StageCost[] = [];
  let side = imageSize;
  let inChannels = 3;
  for (let s = 0; s < v.dimEmbed.length; s++) {
    side = convOut(side, v.patchSize[s], v.patchStride[s], v.patchPadding[s]);
    const C = v.dimEmbed[s];
    const N = side * side;
    const dwConvs = 2 * 9 * N * C;
    const linearPart = 12 * N * C * C;
    costs.push({
      tokens: N,
      channels: C,
      convMacs: N * C * inChannels * v.patchSize[s] ** 2,
      spatialBlockMacs: linearPart + dwConvs + 2 * N * v.windowSize ** 2 * C,
      channelBlockMacs: linearPart + dwConvs + (2 * N * C * C) / v.numGroups[s],
    });
    inChannels = C;
  }
  return costs;
}

/** MLP hidden width that makes one stand-in block cost `macs` at N tokens × C channels (2·N·C·hidden MACs), in multiples of 16. */
export function standInHidden(macs: number, tokens: number, channels: number): number {
  return Math.max(16, Math.round(macs / (2 * tokens * channels) / 16) * 16);
}

export interface VisionCost {
  davitMacs: number;
  standInMacs: number;
  /** The head shared by both: position-embedding add, pooling (negligible) and the projection. */
  headMacs: number;
}

/** Total cost per image of DaViT and of the stand-in, including the shared projection head. */
export function visionCost(v: VisionConfig, imageSize: number, dModel: number): VisionCost {
  let davit = 0;
  let standIn = 0;
  let tokens = 0;
  for (const [s, c] of davitStageCosts(v, imageSize).entries()) {
    davit += c.convMacs + v.depths[s] * (c.spatialBlockMacs + c.channelBlockMacs);
    const hs = standInHidden(c.spatialBlockMacs, c.tokens, c.channels);
    const hc = standInHidden(c.channelBlockMacs, c.tokens, c.channels);
    standIn += c.convMacs + v.depths[s] * 2 * c.tokens * c.channels * (hs + hc);
    tokens = c.tokens;
  }
  const headMacs = (tokens + 1) * v.dimEmbed[v.dimEmbed.length - 1] * dModel;
  return { davitMacs: davit + headMacs, standInMacs: standIn + headMacs, headMacs };
}

/** Builds `vision_encoder`. Block widths are sized for `imageSize` (other input sizes still work). */
export function buildVisionEncoder(
  v: VisionConfig,
  imageSize: number,
  dModel: number,
  w: WeightSource,
  format: WeightFormat,
): GraphBuilder {
  const g = new GraphBuilder('vision_encoder', { format });
  let x = g.input('pixel_values', DataType.FLOAT, ['batch_size', 3, 'height', 'width']);
  const costs = davitStageCosts(v, imageSize);
  let inChannels = 3;
  let tokens = ''; // [B, N, C] view of the current stage

  for (let s = 0; s < v.dimEmbed.length; s++) {
    const C = v.dimEmbed[s];
    const k = v.patchSize[s];
    const p = `vision_tower.convs.${s}`;
    // 1) patch embedding: (LayerNorm →) strided conv (→ LayerNorm), on the [B, C, h, w] map
    if (v.patchPrenorm[s]) x = tokensToMap(g, layerNorm(g, g, w, mapToTokens(g, x), `${p}.pre_norm`, inChannels), x);
    const dims = [C, inChannels, k, k];
    const weight = w.tensor(`${p}.proj.weight`, dims, { kind: 'normal', std: 1 / Math.sqrt(inChannels * k * k) });
    const bias = g.weight(`${p}.proj.bias`, [C], w.tensor(`${p}.proj.bias`, [C], { kind: 'normal', std: 0.02 }));
    const pad = v.patchPadding[s];
    x = g.convWeight(x, `${p}.proj.weight`, dims, weight, bias, {
      kernel_shape: ints([k, k]),
      strides: ints([v.patchStride[s], v.patchStride[s]]),
      pads: ints([pad, pad, pad, pad]),
    });
    tokens = mapToTokens(g, x);
    if (!v.patchPrenorm[s]) tokens = layerNorm(g, g, w, tokens, `${p}.norm`, C);

    // 2) one MLP block per DaViT block (spatial, then channel), pre-norm with residual, as DaViT's blocks are
    const hidden = [
      standInHidden(costs[s].spatialBlockMacs, costs[s].tokens, C),
      standInHidden(costs[s].channelBlockMacs, costs[s].tokens, C),
    ];
    for (let d = 0; d < v.depths[s]; d++) {
      for (const [j, kind] of (['spatial', 'channel'] as const).entries()) {
        const b = `vision_tower.blocks.${s}.${d}.${kind}`;
        const hIn = layerNorm(g, g, w, tokens, `${b}.norm`, C);
        const mlp = linear(g, g, w, gelu(g, linear(g, g, w, hIn, `${b}.fc1`, C, hidden[j])), `${b}.fc2`, hidden[j], C);
        tokens = g.op('Add', [tokens, mlp]);
      }
    }
    x = tokensToMap(g, tokens, x);
    inChannels = C;
  }

  // 3) Florence-2's image head: 2-D learned positions + temporal embedding (T = 1: a constant row, folded into the column table)
  const C = inChannels;
  const rows = g.weight(
    'image_pos_embed.row_embeddings.weight',
    [MAX_POS, C],
    w.tensor('image_pos_embed.row_embeddings.weight', [MAX_POS, C], { kind: 'normal', std: 0.02 }),
  );
  const cols = g.weight(
    'image_pos_embed.column_embeddings.weight',
    [MAX_POS, C],
    w.tensor('image_pos_embed.column_embeddings.weight', [MAX_POS, C], { kind: 'normal', std: 0.02 }),
  );
  const h = dimOf(g, x, 2);
  const wd = dimOf(g, x, 3);
  const zero = g.constI64([0]);
  const rowPart = g.op('Unsqueeze', [g.op('Slice', [rows, zero, g.op('Unsqueeze', [h, zero]), zero]), g.constI64([1])]);
  const colPart = g.op('Unsqueeze', [g.op('Slice', [cols, zero, g.op('Unsqueeze', [wd, zero]), zero]), g.constI64([0])]);
  const pos = g.op('Reshape', [g.op('Add', [rowPart, colPart]), g.constI64([-1, C])]);
  tokens = g.op('Add', [tokens, pos]);
  // 4) [spatial average ; all tokens] → projection → LayerNorm
  const pooled = g.op('ReduceMean', [tokens], { axes: ints([1]), keepdims: int(1) });
  const seq = g.op('Concat', [pooled, tokens], { axis: int(1) });
  const projection = w.tensor('image_projection', [C, dModel], { kind: 'normal', std: 1 / Math.sqrt(C) });
  const projected = g.matMulWeight(g, seq, 'image_projection', C, dModel, projection);
  const features = layerNorm(g, g, w, projected, 'image_proj_norm', dModel);
  g.output('image_features', DataType.FLOAT, ['batch_size', 'floor(height/32)*floor(width/32)+1', dModel], features);
  return g;
}

/** [B, C, h, w] → [B, h·w, C] */
function mapToTokens(g: GraphBuilder, map: string): string {
  const flat = g.op('Reshape', [map, g.constI64([0, 0, -1])]);
  return g.op('Transpose', [flat], { perm: ints([0, 2, 1]) });
}

/** [B, h·w, C] → [B, C, h, w], taking h and w from `like`. */
function tokensToMap(g: GraphBuilder, tokens: string, like: string): string {
  const t = g.op('Transpose', [tokens], { perm: ints([0, 2, 1]) });
  return g.op('Reshape', [t, g.op('Shape', [like])]);
}
