/**
 * The seam between the Florence-2 algorithm and a runtime: the four graphs as plain-array functions.
 * The onnxruntime implementation lives in src/runtime/; tests may fake it.
 */

/** Dimensions generation needs, read from config.json and checked against the graphs. */
export interface ModelDims {
  dModel: number;
  decoderLayers: number;
  decoderHeads: number;
  headDim: number;
  vocabSize: number;
  /** Decoder position table size: the most tokens one sequence can hold, decoder start included. */
  maxPositions: number;
}

/** Decoder self-attention cache, opaque to the loop; rows follow the batch rows of the last step. */
export interface KvCache {
  readonly rows: number;
  readonly length: number;
}

/** Encoder output for a batch, with its attention mask. */
export interface EncoderStates {
  /** [batch, length, dModel] */
  states: Float32Array;
  /** [batch, length], 1 = attend */
  mask: BigInt64Array;
  batch: number;
  length: number;
}

export interface DecoderStepInput {
  /** One token per row: [rows]. */
  tokens: BigInt64Array;
  /** Which encoder item each row reads (beams of one image share it). */
  rowItems: number[];
  encoder: EncoderStates;
  /** null on the first step (the cache starts empty). */
  cache: KvCache | null;
}

export interface DecoderStepOutput {
  /** Last-position logits, [rows, vocab]. */
  logits: Float32Array;
  cache: KvCache;
}

export interface ModelBackend {
  readonly dims: ModelDims;
  /** pixel_values [batch, 3, height, width] → image features [batch, tokens, dModel]. */
  encodeImages(pixels: Float32Array, batch: number, height: number, width: number): Promise<{ features: Float32Array; tokens: number }>;
  /** input_ids [batch, length] → embeddings [batch, length, dModel]. */
  embed(ids: BigInt64Array, batch: number, length: number): Promise<Float32Array>;
  /** [image features ; prompt embeddings] with mask → encoder states. */
  encode(embeds: Float32Array, mask: BigInt64Array, batch: number, length: number): Promise<Float32Array>;
  /** One decoder step for every row. `input.cache` is consumed (also when the step fails): use the returned one. */
  decode(input: DecoderStepInput): Promise<DecoderStepOutput>;
  /** Cache rows picked (and repeated) by `rows`: beam reordering and dropping finished rows. Consumes `cache`. */
  selectRows(cache: KvCache, rows: number[], rowItems: number[]): KvCache | Promise<KvCache>;
  /** Frees a cache no step will continue (a generation's last, or one left by a stop). */
  releaseCache?(cache: KvCache): void;
}
