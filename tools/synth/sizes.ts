/**
 * Model sizes the builder can make. `base` and `large` carry the real Florence-2 language-model
 * dimensions (contract §1.1) and the real DaViT vision configuration (§1.2), which the vision
 * stand-in is sized against; `tiny` is ours, small enough for unit tests.
 */

export interface VisionConfig {
  /** DaViT stage widths, patch embedding geometry, depths and head/group counts (as in config.json). */
  dimEmbed: number[];
  depths: number[];
  numHeads: number[];
  numGroups: number[];
  patchSize: number[];
  patchStride: number[];
  patchPadding: number[];
  patchPrenorm: boolean[];
  windowSize: number;
}

export interface TextConfig {
  dModel: number;
  encoderLayers: number;
  decoderLayers: number;
  encoderHeads: number;
  decoderHeads: number;
  encoderFfn: number;
  decoderFfn: number;
  maxPositions: number;
}

export interface SizeSpec {
  name: SizeName;
  /** Hub name this size imitates (for config.json `_name_or_path`). */
  imitates: string;
  text: TextConfig;
  vision: VisionConfig;
  /** Image side the vision encoder is built and measured for. */
  imageSize: number;
}

export type SizeName = 'tiny' | 'base' | 'large';

/** The real export's vocabulary: BART's 50265 tokens plus Florence-2's 1024 added tokens. */
export const VOCAB_SIZE = 51289;
/** BART's learned position embeddings are indexed from position + 2. */
export const POSITION_OFFSET = 2;

const DAVIT_COMMON = {
  depths: [1, 1, 9, 1],
  patchSize: [7, 3, 3, 3],
  patchStride: [4, 2, 2, 2],
  patchPadding: [3, 1, 1, 1],
  patchPrenorm: [false, true, true, true],
  windowSize: 12,
};

export const SIZES: Readonly<Record<SizeName, SizeSpec>> = {
  tiny: {
    name: 'tiny',
    imitates: 'florence2-server/synthetic-tiny',
    text: {
      dModel: 32,
      encoderLayers: 2,
      decoderLayers: 2,
      encoderHeads: 2,
      decoderHeads: 2,
      encoderFfn: 64,
      // Wide enough for a scripted decoder to hold one lookup unit per script position (≤ 254 tokens).
      decoderFfn: 256,
      maxPositions: 1024,
    },
    // One patch embedding straight to the 24×24 grid; the real stride (32) keeps 577 visual tokens.
    vision: {
      dimEmbed: [32],
      depths: [1],
      numHeads: [2],
      numGroups: [2],
      patchSize: [32],
      patchStride: [32],
      patchPadding: [0],
      patchPrenorm: [false],
      windowSize: 12,
    },
    imageSize: 768,
  },
  base: {
    name: 'base',
    imitates: 'microsoft/Florence-2-base',
    text: {
      dModel: 768,
      encoderLayers: 6,
      decoderLayers: 6,
      encoderHeads: 12,
      decoderHeads: 12,
      encoderFfn: 3072,
      decoderFfn: 3072,
      maxPositions: 1024,
    },
    vision: { ...DAVIT_COMMON, dimEmbed: [128, 256, 512, 1024], numHeads: [4, 8, 16, 32], numGroups: [4, 8, 16, 32] },
    imageSize: 768,
  },
  large: {
    name: 'large',
    imitates: 'microsoft/Florence-2-large',
    text: {
      dModel: 1024,
      encoderLayers: 12,
      decoderLayers: 12,
      encoderHeads: 16,
      decoderHeads: 16,
      encoderFfn: 4096,
      decoderFfn: 4096,
      maxPositions: 1024,
    },
    vision: { ...DAVIT_COMMON, dimEmbed: [256, 512, 1024, 2048], numHeads: [8, 16, 32, 64], numGroups: [8, 16, 32, 64] },
    imageSize: 768,
  },
};

export function isSizeName(s: string): s is SizeName {
  return s === 'tiny' || s === 'base' || s === 'large';
}
