/** Cost figures per size, computed from the same graph builders the tool writes (no weights generated). */
import { buildEmbedTokens, buildEncoder, buildMergedDecoder } from './bart';
import { buildVisionEncoder, visionCost } from './vision';
import { RandomWeights } from './weights';
import { FP32_FORMAT } from './onnx-graph';
import { SIZES, type SizeName, type TextConfig, VOCAB_SIZE } from './sizes';

/** Encoder length for an `<OD>` prompt: 577 visual tokens + 13 prompt tokens. */
export const TYPICAL_ENCODER_LENGTH = 590;

/**
 * Decoder multiply-accumulates for one cached step (one new token) with `past` earlier tokens and
 * `encoderLength` encoder states: per layer self-attention projections 4D², attention 2(past+1)D,
 * cross-attention q/o projections 2D² and attention 2·S·D, FFN 2·D·F; then the LM head D·V.
 */
export function decoderMacsPerToken(c: TextConfig, past: number, encoderLength: number): number {
  const D = c.dModel;
  const perLayer = 4 * D * D + 2 * (past + 1) * D + 2 * D * D + 2 * encoderLength * D + 2 * D * c.decoderFfn;
  return c.decoderLayers * perLayer + D * VOCAB_SIZE;
}

/** Cross-attention keys/values computed once per image at the first step: 2 projections per layer over S states. */
export function crossKvMacs(c: TextConfig, encoderLength: number): number {
  return c.decoderLayers * 2 * encoderLength * c.dModel * c.dModel;
}

export interface SizeReport {
  size: SizeName;
  parameters: { vision: number; embed: number; encoder: number; decoder: number; total: number };
  fp32Bytes: number;
  visionGflops: { standIn: number; davit: number };
  decoderGflopsPerToken: number;
}

export function sizeReport(size: SizeName): SizeReport {
  const spec = SIZES[size];
  const w = new RandomWeights(0);
  const graphs = {
    vision: buildVisionEncoder(spec.vision, spec.imageSize, spec.text.dModel, w, FP32_FORMAT),
    embed: buildEmbedTokens(spec.text, w, FP32_FORMAT),
    encoder: buildEncoder(spec.text, w, FP32_FORMAT),
    decoder: buildMergedDecoder(spec.text, w, FP32_FORMAT),
  };
  const p = Object.fromEntries(Object.entries(graphs).map(([k, g]) => [k, g.parameterCount()])) as SizeReport['parameters'];
  p.total = p.vision + p.embed + p.encoder + p.decoder;
  const cost = visionCost(spec.vision, spec.imageSize, spec.text.dModel);
  return {
    size,
    parameters: p,
    fp32Bytes: Object.values(graphs).reduce((s, g) => s + g.weightBytes(), 0),
    visionGflops: { standIn: (2 * cost.standInMacs) / 1e9, davit: (2 * cost.davitMacs) / 1e9 },
    decoderGflopsPerToken: (2 * decoderMacsPerToken(spec.text, 20, TYPICAL_ENCODER_LENGTH)) / 1e9,
  };
}

const m = (n: number) => `${(n / 1e6).toFixed(1)}M`;

export function costReport(): string {
  const rows = (['tiny', 'base', 'large'] as const).map(sizeReport);
  const lines = [
    '| size | params total | vision | embed_tokens | encoder | decoder (incl. LM head) | ONNX fp32 | vision GFLOPs/image stand-in | DaViT | ratio | decoder GFLOPs/token |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) =>
      [
        r.size,
        m(r.parameters.total),
        m(r.parameters.vision),
        m(r.parameters.embed),
        m(r.parameters.encoder),
        m(r.parameters.decoder),
        `${(r.fp32Bytes / 1e6).toFixed(0)} MB`,
        r.visionGflops.standIn.toFixed(1),
        r.visionGflops.davit.toFixed(1),
        (r.visionGflops.standIn / r.visionGflops.davit).toFixed(3),
        r.decoderGflopsPerToken.toFixed(3),
      ]
        .join(' | ')
        .replace(/^/, '| ')
        .concat(' |'),
    ),
    '',
    `Images 768×768. Decoder cost per token with 20 earlier tokens and ${TYPICAL_ENCODER_LENGTH} encoder states (<OD>). FLOPs = 2 × multiply-accumulates.`,
    '',
  ];
  return lines.join('\n');
}
