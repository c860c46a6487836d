/**
 * One Florence-2 call end to end, over an injected backend: image → pixel values, task → prompt ids,
 * vision encoder + encoder once per image, generation, decoding and post-processing with scores.
 */
import { performance } from 'node:perf_hooks';
import { type EncoderStates, type ModelBackend } from './generation/backend';
import { type GenerationParams, type GenerationOutput, generate } from './generation/loop';
import { type FlorenceTokenizer } from './tokenizer';
import { type DecodedImage, type PreprocessOptions, preprocessBatch } from './preprocess';
import { type PixelRegion, PromptError, constructPrompt, constructRegionPrompt } from './prompts';
import { type ScoredPostProcessResult, postProcessWithScores } from './postprocess';
import { TASKS, type TaskToken, isTaskToken } from './tasks';

/** Generation settings a caller may override (the rest come from the model's configs). */
export interface GenerationOverrides {
  numBeams?: number;
  maxNewTokens?: number;
  earlyStopping?: boolean;
  lengthPenalty?: number;
  noRepeatNgramSize?: number;
}

export interface RunRequest {
  /** Encoded image bytes (JPEG, PNG, WebP, GIF, TIFF, AVIF) or an already decoded image. */
  image: Uint8Array | DecodedImage;
  task: TaskToken;
  /** The text after the task token (phrase grounding, referring segmentation, open vocabulary). */
  text?: string;
  /** Region tasks: a box in pixels of the (EXIF-oriented) image, quantized to `<loc_N>` tokens. */
  region?: PixelRegion;
}

/** Milliseconds per stage; for a batch, the batch's stage times. */
export interface StageTimings {
  preprocess: number;
  vision: number;
  encoder: number;
  decoder: number;
  postprocess: number;
  total: number;
}

export interface RunResult {
  task: TaskToken;
  /** The task's parsed value (contract §7.4 inner value), with confidence scores for boxes and polygons. */
  result: ScoredPostProcessResult;
  /** The decoded generation, special tokens included (`</s><s>...</s>`). */
  text: string;
  /** Generated ids, decoder start token first. */
  tokenIds: number[];
  imageSize: { width: number; height: number };
  promptTokens: number;
  generatedTokens: number;
  timings: StageTimings;
}

export interface PipelineParts {
  backend: ModelBackend;
  tokenizer: FlorenceTokenizer;
  preprocess: PreprocessOptions;
  generation: GenerationParams;
  /** Encoder position table size (visual tokens + prompt must fit). */
  encoderMaxPositions: number;
}

export interface RunOptions {
  generation?: GenerationOverrides;
  /** Checked between decoder steps; returning true stops the run with GenerationStopped. */
  shouldStop?: () => boolean;
}

/** A generation override out of range; `field` is the {@link GenerationOverrides} key at fault. */
export class GenerationOptionError extends RangeError {
  constructor(
    readonly field: 'numBeams' | 'maxNewTokens',
    message: string,
  ) {
    super(message);
    this.name = 'GenerationOptionError';
  }
}

function resolveGeneration(base: GenerationParams, o: GenerationOverrides | undefined, maxPositions: number): GenerationParams {
  const g = { ...base, ...Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) };
  if (!Number.isInteger(g.numBeams) || g.numBeams < 1) throw new GenerationOptionError('numBeams', `generation.numBeams must be an integer ≥ 1, got ${g.numBeams}`);
  if (!Number.isInteger(g.maxNewTokens) || g.maxNewTokens < 1 || g.maxNewTokens > maxPositions) {
    throw new GenerationOptionError('maxNewTokens', `generation.maxNewTokens must be an integer in [1, ${maxPositions}], got ${g.maxNewTokens}`);
  }
  return g;
}

/** The prompt string of a request; throws PromptError naming the offending field. */
export function promptFor(req: RunRequest, imageSize: { width: number; height: number }): string {
  if (!isTaskToken(req.task)) throw new PromptError('task', `\`task\` must be one of the 15 Florence-2 task tokens. Given: ${JSON.stringify(req.task)}`);
  if (TASKS[req.task].input === 'region' && req.region !== undefined) {
    if (req.text !== undefined && req.text !== '') throw new PromptError('text', `give \`region\` or \`text\` for ${req.task}, not both`, req.task);
    return constructRegionPrompt(req.task, req.region, imageSize);
  }
  if (req.region !== undefined) throw new PromptError('region', `\`region\` is not allowed for task ${req.task}, which takes ${TASKS[req.task].input === 'none' ? 'no input' : 'text'}`, req.task);
  return constructPrompt(req.task, req.text);
}

/**
 * Vision encoder, prompt embeddings and encoder over `[image features ; prompt]` (image first, as
 * the reference merges them), with the prompt's padding masked. Throws PromptError when the prompt
 * does not fit the encoder's position table.
 */
export async function encodeInputs(
  backend: ModelBackend,
  pixelValues: Float32Array,
  pixelDims: readonly [number, number, number, number],
  ids: BigInt64Array,
  attentionMask: BigInt64Array,
  encoderMaxPositions: number,
  task?: TaskToken,
  imageOf?: readonly number[],
): Promise<{ states: EncoderStates; visionMs: number }> {
  const D = backend.dims.dModel;
  const [images, , H, W] = pixelDims;
  // `imageOf[b]` is the image of prompt row b: one image may serve several prompts (open vocabulary).
  const rowImage = imageOf ?? Array.from({ length: images }, (_, i) => i);
  const B = rowImage.length;
  const T = ids.length / B;
  const t0 = performance.now();
  const { features, tokens: N } = await backend.encodeImages(pixelValues, images, H, W);
  const visionMs = performance.now() - t0;
  const S = N + T;
  if (S > encoderMaxPositions) {
    throw new PromptError('text', `\`text\` makes a prompt of ${T} tokens; with ${N} visual tokens the encoder holds ${encoderMaxPositions}, so at most ${encoderMaxPositions - N}`, task);
  }
  const text = await backend.embed(ids, B, T);
  const embeds = new Float32Array(B * S * D);
  const mask = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++) {
    const i = rowImage[b];
    embeds.set(features.subarray(i * N * D, (i + 1) * N * D), b * S * D);
    embeds.set(text.subarray(b * T * D, (b + 1) * T * D), (b * S + N) * D);
    mask.fill(1n, b * S, b * S + N);
    mask.set(attentionMask.subarray(b * T, (b + 1) * T), b * S + N);
  }
  const states = await backend.encode(embeds, mask, B, S);
  return { states: { states, mask, batch: B, length: S }, visionMs };
}

/** Runs several requests as one batch: one vision and encoder pass, one generation loop. */
export async function runBatch(parts: PipelineParts, requests: readonly RunRequest[], options: RunOptions = {}): Promise<RunResult[]> {
  if (requests.length === 0) return [];
  const t0 = performance.now();
  const { backend, tokenizer } = parts;
  const gen = resolveGeneration(parts.generation, options.generation, backend.dims.maxPositions);

  // 1) images and prompts
  // The same image object in several requests (e.g. one prompt per class) is decoded and encoded once.
  const unique = [...new Set(requests.map((r) => r.image))];
  const imageOf = requests.map((r) => unique.indexOf(r.image));
  const batch = await preprocessBatch(unique, parts.preprocess);
  const sizeOf = (i: number) => batch.originalSizes[imageOf[i]];
  const prompts = requests.map((r, i) => promptFor(r, sizeOf(i)));
  const encoded = tokenizer.encodeBatch(prompts);
  const [B, T] = encoded.dims;
  const promptLengths = Array.from({ length: B }, (_, b) => encoded.attentionMask.subarray(b * T, (b + 1) * T).reduce((s, m) => s + Number(m), 0));
  const t1 = performance.now();

  // 2) vision encoder, prompt embeddings, encoder over [image ; prompt]
  const encoder = await encodeInputs(backend, batch.pixelValues, batch.dims, encoded.ids, encoded.attentionMask, parts.encoderMaxPositions, requests[0].task, imageOf);
  const t3 = performance.now();

  // 3) generation
  const out: GenerationOutput = await generate(backend, encoder.states, gen, { shouldStop: options.shouldStop });
  const t4 = performance.now();

  // 4) decode and parse, with one confidence per instance from its tokens' log-probabilities
  const results = out.sequences.map((seq, i) => {
    const pieces = tokenizer.tokenPieces(seq.ids);
    const scored = pieces.map((p, k) => ({ text: p, logprob: k === 0 ? 0 : seq.logprobs[k - 1] ?? 0 }));
    return {
      task: requests[i].task,
      result: postProcessWithScores(requests[i].task, scored, sizeOf(i)),
      text: pieces.join(''),
      tokenIds: seq.ids,
      imageSize: sizeOf(i),
      promptTokens: promptLengths[i],
      generatedTokens: seq.ids.length - 1,
    };
  });
  const t5 = performance.now();
  const timings: StageTimings = { preprocess: t1 - t0, vision: encoder.visionMs, encoder: t3 - t1 - encoder.visionMs, decoder: t4 - t3, postprocess: t5 - t4, total: t5 - t0 };
  return results.map((r) => ({ ...r, timings }));
}
