/**
 * florence2-server's library API: load a Florence-2 ONNX folder (onnx-community layout) and run any
 * of the 15 tasks on images, with the reference's prompts, generation and post-processing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OrtBackend, type OrtBackendOptions } from './runtime/ort-backend';
import { type DtypeChoice } from './runtime/model-files';
import { folderDtypes } from './hub/dtypes';
import { FlorenceTokenizer } from './florence/tokenizer';
import { type ModelConfig, readModelConfig } from './florence/model-config';
import {
  type PreprocessOptions,
  type ResampleMode,
  preprocessOptionsFromConfig,
  readPreprocessorConfig,
  DEFAULT_MAX_PIXELS,
} from './florence/preprocess';
import {
  type BatchRunOptions,
  type PipelineParts,
  type RunOptions,
  type RunOutcome,
  type RunRequest,
  type RunResult,
  runBatch,
  runBatchSettled,
} from './florence/pipeline';

export { constructPrompt, constructRegionPrompt, PromptError } from './florence/prompts';
export { postProcess, postProcessWithScores } from './florence/postprocess';
export type {
  PostProcessResult,
  ScoredPostProcessResult,
  BoxesResult,
  QuadBoxesResult,
  PolygonsResult,
  OpenVocabularyResult,
} from './florence/postprocess';
export { TASKS, TASK_TOKENS, isTaskToken } from 'florence2-client/catalogue';
export type { TaskToken } from 'florence2-client/catalogue';
export { GenerationStopped } from './florence/generation/loop';
export { GenerationOptionError } from './florence/pipeline';
export { ImageDecodeError } from './florence/preprocess';
export { ModelLoadError } from './runtime/ort-backend';
export { ModelConfigError } from './florence/model-config';
export type {
  RunRequest,
  RunResult,
  RunOptions,
  GenerationOverrides,
  StageTimings,
  BatchInfo,
  BatchItemOptions,
  BatchRunOptions,
  RunOutcome,
} from './florence/pipeline';

export interface LoadOptions extends Omit<OrtBackendOptions, 'dtype'> {
  /**
   * One dtype for every module, one per module (missing modules: fp32; the default), or `auto`: per
   * module the measured best variant for the first execution provider that the folder has.
   */
  dtype?: DtypeChoice | 'auto';
  /** Resize like PIL (bit-exact with the Python reference, default) or with libvips (close to it; see README). */
  resample?: ResampleMode;
  /** Images with more pixels are rejected before decoding. */
  maxPixels?: number;
  /** Images per vision-encoder call within a batch (bounds its memory); default: a batch's images in one call. */
  maxVisionBatch?: number;
}

/** A loaded Florence-2 model. */
export class Florence2 {
  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly backend: OrtBackend,
    private readonly parts: PipelineParts,
  ) {}

  /** Opens `dir`: configs, tokenizer and the four ONNX sessions (dtype per module), checked at load. */
  static async load(dir: string, options: LoadOptions = {}): Promise<Florence2> {
    const config = readModelConfig(dir);
    const tokenizer = FlorenceTokenizer.fromDir(dir);
    const pre = readPreprocessorConfig(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')));
    const preprocess: PreprocessOptions = {
      ...preprocessOptionsFromConfig(pre, { resample: options.resample ?? 'pil' }),
      maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
    };
    const first = options.executionProviders?.[0];
    const provider = first === undefined ? 'cpu' : typeof first === 'string' ? first : first.name;
    const dtype = options.dtype === 'auto' ? folderDtypes(dir, 'auto', provider) : options.dtype;
    const backend = await OrtBackend.open(dir, config.dims, { ...options, dtype });
    return new Florence2(dir, config, backend, {
      backend,
      tokenizer,
      preprocess,
      generation: config.generation,
      encoderMaxPositions: config.encoderMaxPositions,
      ...(options.maxVisionBatch !== undefined ? { maxVisionBatch: options.maxVisionBatch } : {}),
    });
  }

  /** Runs one request. */
  async run(request: RunRequest, options: RunOptions = {}): Promise<RunResult> {
    return (await runBatch(this.parts, [request], options))[0];
  }

  /** Runs several requests as one batch (one generation loop; the same generation settings for all). */
  runBatch(requests: readonly RunRequest[], options: RunOptions = {}): Promise<RunResult[]> {
    return runBatch(this.parts, requests, options);
  }

  /**
   * Runs requests from different callers as one batch, each settled on its own: its own bad input,
   * `items[i].shouldStop` or `items[i].maxNewTokens` affects only it, and `onOutcome` reports each
   * outcome as soon as it is final. Rejects only when the batch itself fails (the runtime).
   */
  runBatchSettled(requests: readonly RunRequest[], options: BatchRunOptions = {}): Promise<RunOutcome[]> {
    return runBatchSettled(this.parts, requests, options);
  }

  /** Milliseconds spent inside `session.run` for decoder steps since load (embedding and decoder graphs). */
  get decoderRunMs(): number {
    return this.backend.decoderRunMs;
  }

  /** Bytes that crossed `session.run` in host memory during decoder steps, since load (README "GPU serving path"). */
  get decoderBytes(): { hostToDevice: number; deviceToHost: number } {
    const { hostToDevice, deviceToHost } = this.backend.transfers.totals.decoder;
    return { hostToDevice, deviceToHost };
  }

  /** The ONNX files in use, per module. */
  get files(): Readonly<Record<string, string>> {
    return this.backend.files;
  }

  async release(): Promise<void> {
    await this.backend.release();
  }
}
