/** config.json and generation_config.json of a Florence-2 folder, as typed values (contract §1, §6.1). */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelDims } from './generation/backend';
import { type GenerationParams } from './generation/loop';

export class ModelConfigError extends Error {}

/** A parsed JSON object whose fields are checked where they are read. */
type JsonObject = Record<string, unknown>;

function readJson(dir: string, file: string, required: boolean): JsonObject | null {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (required) throw new ModelConfigError(`${dir} is not a Florence-2 model folder: ${file} is missing`);
    return null;
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as JsonObject;
  } catch (err) {
    throw new ModelConfigError(`${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export interface ModelConfig {
  dims: ModelDims;
  /** Encoder position table size: visual tokens + prompt tokens must fit. */
  encoderMaxPositions: number;
  /** Defaults for generation: text_config, overlaid by generation_config.json (as transformers.js does). */
  generation: GenerationParams;
  /** `_name_or_path`, for model info. */
  name: string;
}

/** The reference's `max_new_tokens` in the model card and notebook. */
export const DEFAULT_MAX_NEW_TOKENS = 1024;

export function readModelConfig(dir: string): ModelConfig {
  const config = readJson(dir, 'config.json', true)!;
  if (config.model_type !== 'florence2' || typeof config.text_config !== 'object' || config.text_config === null) {
    throw new ModelConfigError(
      `${join(dir, 'config.json')}: model_type is ${JSON.stringify(config.model_type)}, expected "florence2" with a text_config`,
    );
  }
  const t = config.text_config as JsonObject;
  const num = (key: string, fallback?: number): number => {
    const v = t[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new ModelConfigError(`${join(dir, 'config.json')}: text_config.${key} must be a number, got ${JSON.stringify(t[key])}`);
    return v;
  };
  const dModel = num('d_model');
  const heads = num('decoder_attention_heads');
  const dims: ModelDims = {
    dModel,
    decoderLayers: num('decoder_layers'),
    decoderHeads: heads,
    headDim: dModel / heads,
    vocabSize: num('vocab_size'),
    maxPositions: num('max_position_embeddings'),
  };
  const gen: JsonObject = { ...t, ...(readJson(dir, 'generation_config.json', false) ?? {}) };
  const pick = (key: string, fallback: number | null): number | null => {
    const v = gen[key];
    return typeof v === 'number' ? v : fallback;
  };
  return {
    dims,
    encoderMaxPositions: dims.maxPositions,
    name: typeof config._name_or_path === 'string' ? config._name_or_path : '',
    generation: {
      maxNewTokens: Math.min(DEFAULT_MAX_NEW_TOKENS, dims.maxPositions),
      numBeams: pick('num_beams', 1)!,
      lengthPenalty: pick('length_penalty', 1)!,
      earlyStopping: gen.early_stopping === true,
      noRepeatNgramSize: pick('no_repeat_ngram_size', 0)!,
      decoderStartTokenId: pick('decoder_start_token_id', 2)!,
      eosTokenId: pick('eos_token_id', 2)!,
      padTokenId: pick('pad_token_id', 1)!,
      forcedBosTokenId: pick('forced_bos_token_id', null),
      forcedEosTokenId: pick('forced_eos_token_id', null),
    },
  };
}
