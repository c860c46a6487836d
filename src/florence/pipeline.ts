/**
 * One Florence-2 call end to end, over an injected backend: image → pixel values, task → prompt ids,
 * vision encoder + encoder once per image, generation, decoding and post-processing with scores.
 */
import { performance } from 'node:perf_hooks';
import { type EncoderStates, type ModelBackend } from './generation/backend';
import { type GeneratedSequence, type GenerationParams, GenerationStopped, generate } from './generation/loop';
import { type FlorenceTokenizer } from './tokenizer';
import { type DecodedImage, type ImageSize, type PreprocessOptions, type PreprocessedImage, preprocess } from './preprocess';
import { type PixelRegion, PromptError, constructPrompt, constructRegionPrompt } from './prompts';
import { type ScoredPostProcessResult, postProcessWithScores } from './postprocess';
import { TASKS, type TaskToken, isTaskToken } from 'florence2-client/catalogue';

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

/**
 * Milliseconds per stage. In a batch, `preprocess`, `vision` and `encoder` are the batch's (one pass
 * for all its requests: image decoding and prompt tokenization, the vision encoder, prompt
 * embedding + merge + encoder); `decoder`, `postprocess` and `total` are the request's own:
 * `decoder` from the start of generation to the end of this request's last decoder step (steps it
 * shared with the rest of the batch), `postprocess` its own decoding and parsing, `total` from the
 * start of the batch to its result. `shared` says whether the first three were shared with other
 * requests (see {@link RunResult.batch}).
 */
export interface StageTimings {
  preprocess: number;
  vision: number;
  encoder: number;
  decoder: number;
  postprocess: number;
  total: number;
  /**
   * True when `preprocess`, `vision` and `encoder` are the times of a batch of several requests,
   * spent once for all of them (do not add them up per request); false or absent when the request
   * ran alone. `decoder`, `postprocess` and `total` are always the request's own.
   */
  shared?: boolean;
}

/** The batch a result was computed in. */
export interface BatchInfo {
  /** Requests that went through the vision encoder, encoder and generation together (this one included). */
  requests: number;
  /**
   * Decoder rows the batch started with: requests × numBeams (the first beam step decodes one row per
   * request, since all its beams hold only the start token).
   */
  rows: number;
  /** Decoder steps this request took part in. */
  steps: number;
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
  batch: BatchInfo;
}

export interface PipelineParts {
  backend: ModelBackend;
  tokenizer: FlorenceTokenizer;
  preprocess: PreprocessOptions;
  generation: GenerationParams;
  /** Encoder position table size (visual tokens + prompt must fit). */
  encoderMaxPositions: number;
  /** Images per vision-encoder call (bounds its activations' memory); default: all of a batch in one call. */
  maxVisionBatch?: number;
}

export interface RunOptions {
  generation?: GenerationOverrides;
  /**
   * Checked between decoder steps; returning true stops the run with GenerationStopped (in
   * {@link runBatchSettled}: ends every request not yet final with a GenerationStopped outcome).
   */
  shouldStop?: () => boolean;
}

/** One request's own settings in a {@link runBatchSettled} batch. */
export interface BatchItemOptions {
  /** This request's limit (default: `generation.maxNewTokens`, else the model's). */
  maxNewTokens?: number;
  /** Checked before every decoder step; true ends this request alone with GenerationStopped. */
  shouldStop?: () => boolean;
}

export interface BatchRunOptions extends RunOptions {
  /** Per request, index for index with the requests. */
  items?: readonly BatchItemOptions[];
  /**
   * Called once per request as soon as its outcome is final (a failed input right away, a generated
   * request right after its last decoder step and its post-processing), before the rest of the
   * batch goes on; never from within the `runBatchSettled` call itself. It must not throw: an
   * exception from it rejects the batch.
   */
  onOutcome?: (index: number, outcome: RunOutcome) => void;
}

/** A request's outcome in a settled batch. */
export type RunOutcome = { ok: true; result: RunResult } | { ok: false; error: unknown };

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
  if (!Number.isInteger(g.numBeams) || g.numBeams < 1)
    throw new GenerationOptionError('numBeams', `generation.numBeams must be an integer ≥ 1, got ${g.numBeams}`);
  if (!Number.isInteger(g.maxNewTokens) || g.maxNewTokens < 1 || g.maxNewTokens > maxPositions) {
    throw new GenerationOptionError(
      'maxNewTokens',
      `generation.maxNewTokens must be an integer in [1, ${maxPositions}], got ${g.maxNewTokens}`,
    );
  }
  return g;
}

/** The prompt string of a request; throws PromptError naming the offending field. */
export function promptFor(req: RunRequest, imageSize: { width: number; height: number }): string {
  if (!isTaskToken(req.task))
    throw new PromptError('task', `\`task\` must be one of the 15 Florence-2 task tokens. Given: ${JSON.stringify(req.task)}`);
  if (TASKS[req.task].input === 'region' && req.region !== undefined) {
    if (req.text !== undefined && req.text !== '')
      throw new PromptError('text', `give \`region\` or \`text\` for ${req.task}, not both`, req.task);
    return constructRegionPrompt(req.task, req.region, imageSize);
  }
  if (req.region !== undefined)
    throw new PromptError(
      'region',
      `\`region\` is not allowed for task ${req.task}, which takes ${TASKS[req.task].input === 'none' ? 'no input' : 'text'}`,
      req.task,
    );
  return constructPrompt(req.task, req.text);
}

/** The vision encoder over `[images, 3, H, W]`, in calls of at most `chunk` images: features `[images, N, dModel]`. */
async function visionFeatures(
  backend: ModelBackend,
  pixelValues: Float32Array,
  pixelDims: readonly [number, number, number, number],
  chunk = Infinity,
): Promise<{ features: Float32Array; tokens: number; visionMs: number }> {
  const [images, , H, W] = pixelDims;
  const t0 = performance.now();
  if (images <= chunk) {
    const { features, tokens } = await backend.encodeImages(pixelValues, images, H, W);
    return { features, tokens, visionMs: performance.now() - t0 };
  }
  const perImage = 3 * H * W;
  const parts: Float32Array[] = [];
  let tokens = 0;
  for (let i = 0; i < images; i += chunk) {
    const n = Math.min(chunk, images - i);
    const out = await backend.encodeImages(pixelValues.subarray(i * perImage, (i + n) * perImage), n, H, W);
    parts.push(out.features);
    tokens = out.tokens;
  }
  const features = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    features.set(p, at);
    at += p.length;
  }
  return { features, tokens, visionMs: performance.now() - t0 };
}

function promptTooLong(promptTokens: number, visualTokens: number, encoderMaxPositions: number, task?: TaskToken): PromptError {
  return new PromptError(
    'text',
    `\`text\` makes a prompt of ${promptTokens} tokens; with ${visualTokens} visual tokens the encoder holds ${encoderMaxPositions}, so at most ${encoderMaxPositions - visualTokens}`,
    task,
  );
}

/**
 * Prompt embeddings and the encoder over `[image features ; prompt]` (image first, as the reference
 * merges them), with the prompt's padding masked; `rowImage[b]` is the image of prompt row b.
 */
async function encodeWithFeatures(
  backend: ModelBackend,
  features: Float32Array,
  N: number,
  ids: BigInt64Array,
  attentionMask: BigInt64Array,
  rowImage: readonly number[],
): Promise<EncoderStates> {
  const D = backend.dims.dModel;
  const B = rowImage.length;
  const T = ids.length / B;
  const S = N + T;
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
  return { states, mask, batch: B, length: S };
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
  // `imageOf[b]` is the image of prompt row b: one image may serve several prompts (open vocabulary).
  const rowImage = imageOf ?? Array.from({ length: pixelDims[0] }, (_, i) => i);
  const T = ids.length / rowImage.length;
  const { features, tokens: N, visionMs } = await visionFeatures(backend, pixelValues, pixelDims);
  if (N + T > encoderMaxPositions) throw promptTooLong(T, N, encoderMaxPositions, task);
  return { states: await encodeWithFeatures(backend, features, N, ids, attentionMask, rowImage), visionMs };
}

/** Generated ids → text, parsed result with scores, token counts. */
function decodeResult(tokenizer: FlorenceTokenizer, req: RunRequest, seq: GeneratedSequence, size: ImageSize, promptTokens: number) {
  const pieces = tokenizer.tokenPieces(seq.ids);
  const scored = pieces.map((p, k) => ({ text: p, logprob: k === 0 ? 0 : (seq.logprobs[k - 1] ?? 0) }));
  return {
    task: req.task,
    result: postProcessWithScores(req.task, scored, size),
    text: pieces.join(''),
    tokenIds: seq.ids,
    imageSize: size,
    promptTokens,
    generatedTokens: seq.ids.length - 1,
  };
}

/**
 * The batch run behind {@link runBatch} (`failFast`: the first failure throws, `shouldStop` stops the
 * whole generation) and {@link runBatchSettled} (each request settles on its own).
 */
async function runCore(
  parts: PipelineParts,
  requests: readonly RunRequest[],
  options: BatchRunOptions,
  failFast: boolean,
): Promise<RunOutcome[]> {
  const n = requests.length;
  if (n === 0) return [];
  if (options.items !== undefined && options.items.length !== n)
    throw new RangeError(`items has ${options.items.length} entries for ${n} requests`);
  const t0 = performance.now();
  const { backend, tokenizer } = parts;
  const outcomes = new Array<RunOutcome | undefined>(n);
  const settle = (i: number, outcome: RunOutcome) => {
    outcomes[i] = outcome;
    options.onOutcome?.(i, outcome);
  };
  const fail = (i: number, error: unknown) => {
    if (failFast) throw error;
    settle(i, { ok: false, error });
  };
  const itemStopped = (i: number) => !failFast && (options.shouldStop?.() === true || options.items?.[i]?.shouldStop?.() === true);
  const pending = () => requests.map((_, i) => i).filter((i) => outcomes[i] === undefined);
  // Outcomes are never reported from within the call itself, only once it has returned its promise.
  await Promise.resolve();

  // 0) generation settings: one per request (its own maxNewTokens), the rest shared
  const gens = requests.map((_, i) => {
    const maxNewTokens = options.items?.[i]?.maxNewTokens ?? options.generation?.maxNewTokens;
    try {
      return resolveGeneration(parts.generation, { ...options.generation, maxNewTokens }, backend.dims.maxPositions);
    } catch (e) {
      fail(i, e);
      return undefined;
    }
  });
  for (const i of pending()) if (itemStopped(i)) settle(i, { ok: false, error: new GenerationStopped(0) });

  // 1) images and prompts; the same image object in several requests (e.g. one prompt per class) is decoded once
  const images = new Map<RunRequest['image'], PreprocessedImage | { error: unknown }>();
  for (const i of pending()) {
    const image = requests[i].image;
    if (images.has(image)) continue;
    try {
      images.set(image, await preprocess(image, parts.preprocess));
    } catch (error) {
      if (failFast) throw error;
      images.set(image, { error });
    }
  }
  const promptIds: number[][] = [];
  for (const i of pending()) {
    const image = images.get(requests[i].image) as PreprocessedImage | { error: unknown };
    if ('error' in image) {
      fail(i, image.error);
      continue;
    }
    try {
      promptIds[i] = tokenizer.encode(promptFor(requests[i], image.originalSize));
    } catch (e) {
      fail(i, e);
    }
  }
  let live = pending();
  if (live.length === 0) return outcomes as RunOutcome[];
  // Only the images of requests still live go to the vision encoder.
  const used = [...new Set(live.map((i) => requests[i].image))];
  const usedPixels = used.map((image) => images.get(image) as PreprocessedImage);
  const { width: W, height: H } = usedPixels[0].size;
  const pixelValues = new Float32Array(used.length * 3 * H * W);
  usedPixels.forEach((img, u) => {
    if (img.size.width !== W || img.size.height !== H)
      throw new RangeError(`image ${u} is ${img.size.width}x${img.size.height}, batch is ${W}x${H}`);
    pixelValues.set(img.pixelValues, u * 3 * H * W);
  });
  const t1 = performance.now();

  // 2) vision encoder; each prompt must fit the encoder beside the visual tokens
  const vision = await visionFeatures(backend, pixelValues, [used.length, 3, H, W], parts.maxVisionBatch);
  for (const i of live) {
    if (vision.tokens + promptIds[i].length > parts.encoderMaxPositions)
      fail(i, promptTooLong(promptIds[i].length, vision.tokens, parts.encoderMaxPositions, requests[i].task));
  }
  live = pending();
  if (live.length === 0) return outcomes as RunOutcome[];
  // 3) prompt embeddings and encoder over [image ; prompt], prompts right-padded to the longest
  const T = Math.max(...live.map((i) => promptIds[i].length));
  const ids = new BigInt64Array(live.length * T).fill(BigInt(tokenizer.padId));
  const mask = new BigInt64Array(live.length * T);
  live.forEach((i, b) => {
    promptIds[i].forEach((id, k) => {
      ids[b * T + k] = BigInt(id);
      mask[b * T + k] = 1n;
    });
  });
  const states = await encodeWithFeatures(
    backend,
    vision.features,
    vision.tokens,
    ids,
    mask,
    live.map((i) => used.indexOf(requests[i].image)),
  );
  const t3 = performance.now();

  // 4) generation; each request is decoded, parsed and settled as soon as it is final
  const gen = gens[live[0]] as GenerationParams;
  const shared = { preprocess: t1 - t0, vision: vision.visionMs, encoder: t3 - t1 - vision.visionMs };
  const batch = { requests: live.length, rows: live.length * gen.numBeams };
  // Items finishing at the same step have the same step count (all start together): one decoder end for them.
  let lastDone = { steps: -1, at: 0 };
  const onItemDone = (b: number, seq: GeneratedSequence | null, steps: number) => {
    const i = live[b];
    if (seq === null) {
      settle(i, { ok: false, error: new GenerationStopped(steps) });
      return;
    }
    if (lastDone.steps !== steps) lastDone = { steps, at: performance.now() };
    const tp = performance.now();
    const image = images.get(requests[i].image) as PreprocessedImage;
    let decoded;
    try {
      decoded = decodeResult(tokenizer, requests[i], seq, image.originalSize, promptIds[i].length);
    } catch (e) {
      fail(i, e);
      return;
    }
    const t = performance.now();
    const timings: StageTimings = { ...shared, decoder: lastDone.at - t3, postprocess: t - tp, total: t - t0, shared: live.length > 1 };
    settle(i, { ok: true, result: { ...decoded, timings, batch: { ...batch, steps } } });
  };
  await generate(backend, states, gen, {
    maxNewTokens: live.map((i) => (gens[i] as GenerationParams).maxNewTokens),
    shouldStop: failFast ? options.shouldStop : undefined,
    itemStopped: failFast ? undefined : (b) => itemStopped(live[b]),
    onItemDone,
  });
  return outcomes as RunOutcome[];
}

/**
 * Runs several requests as one batch: one vision and encoder pass, one generation loop. The first
 * failing request fails the batch; `shouldStop` stops it with GenerationStopped.
 */
export async function runBatch(parts: PipelineParts, requests: readonly RunRequest[], options: RunOptions = {}): Promise<RunResult[]> {
  const outcomes = await runCore(parts, requests, { generation: options.generation, shouldStop: options.shouldStop }, true);
  return outcomes.map((o) => {
    if (!o.ok) throw o.error;
    return o.result;
  });
}

/**
 * Runs requests from different callers as one batch (one vision and encoder pass, one generation
 * loop) while each request settles on its own: its own input problems (ImageDecodeError,
 * PromptError, GenerationOptionError) fail only it, its own `items[i].shouldStop` stops only it
 * (GenerationStopped with its steps, before the next decoder step), its own `maxNewTokens` bounds only
 * it, and each outcome goes to `onOutcome` as soon as it is final. Every request's result is what it
 * would be alone. Rejects only on a failure of the batch itself (the backend, the runtime).
 * `generation` settings other than maxNewTokens (numBeams, ...) are shared by the batch.
 */
export function runBatchSettled(
  parts: PipelineParts,
  requests: readonly RunRequest[],
  options: BatchRunOptions = {},
): Promise<RunOutcome[]> {
  return runCore(parts, requests, options, false);
}
