/**
 * Scripted weights: the decoder emits a chosen token sequence whatever the image and prompt.
 *
 * How: the decoder's output is made a function of its position alone.
 * 1) Every attention output projection is zero and every LayerNorm plain (γ=1, β=0), so attention
 *    leaves the hidden state unchanged and nothing from the encoder or earlier tokens gets in.
 * 2) The decoder position table holds a large code vector c_p per position (positions past the
 *    script share the last code), so after the embedding LayerNorm the state is c_p, give or take
 *    the much smaller token embedding.
 * 3) The last layer's FFN is a lookup table: hidden unit p fires only when the state correlates
 *    with c_p above a threshold set between 1 and the largest cross-correlation of the codes, and
 *    writes a large multiple of u_t, the code of the token to emit at position p.
 * 4) The LM head is tied to the token embedding, whose rows for the emitted tokens are γ·u_t, so
 *    the emitted token's logit beats every other by at least {@link LOGIT_MARGIN} nats.
 * With that margin the script's path has log-probability ≈ 0 and every other path ≤ −60, so greedy
 * decoding and beam search (any width, with or without early stopping) return the script.
 */
import { type WeightSource } from './layers';
import { Rng } from './rng';
import { OverriddenWeights } from './weights';
import { W } from './bart';
import { POSITION_OFFSET, type TextConfig, VOCAB_SIZE } from './sizes';

export const BOS = 0;
export const PAD = 1;
export const EOS = 2;
export const DECODER_START = 2;
/** Minimum gap, in nats, between the scripted token's logit and any other. */
export const LOGIT_MARGIN = 60;
/** Pre-activation of a firing lookup unit; non-firing units sit at −FIRE or below, where GELU is ~0. */
const FIRE = 10;
/**
 * How much larger position codes are than token embeddings, and FFN writes than the residual. Large
 * enough that the smaller part moves correlations by about 1e-3, small enough that every weight
 * and activation stays far inside float16's range (65504), so `_fp16` and `_q4f16` keep the script.
 */
const DOMINANCE = 1e3;
/** Token-embedding spread of tokens the script never emits. */
const QUIET_STD = 0.02;

export class ScriptError extends Error {}

/**
 * The tokens the decoder produces at each position for a script: position 0 (fed the decoder start
 * token) emits `<s>`, positions 1..n emit the script, position n+1 emits `</s>`.
 */
export function scriptOutputs(script: number[]): number[] {
  return [BOS, ...script, EOS];
}

/** Throws unless Florence-2's decoding could emit `script` exactly. */
export function validateScript(script: number[], c: TextConfig): void {
  for (const [i, t] of script.entries()) {
    if (!Number.isInteger(t) || t < 0 || t >= VOCAB_SIZE) throw new ScriptError(`script token ${i} (${t}) is not a vocabulary id`);
    if (t === BOS || t === PAD || t === EOS)
      throw new ScriptError(`script token ${i} is the special id ${t}; the script is the text between <s> and </s>`);
  }
  const full = [DECODER_START, ...scriptOutputs(script)];
  const seen = new Map<string, number>();
  for (let i = 0; i + 3 <= full.length; i++) {
    const key = full.slice(i, i + 3).join(',');
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new ScriptError(
        `the script repeats the token trigram [${key}] (positions ${earlier} and ${i} of ${JSON.stringify(full)}); ` +
          'Florence-2 decodes with no_repeat_ngram_size 3, so no model could emit it',
      );
    }
    seen.set(key, i);
  }
  const positions = full.length;
  if (positions > c.maxPositions) throw new ScriptError(`the script needs ${positions} decoder positions; this size has ${c.maxPositions}`);
  if (positions - 1 > c.decoderFfn) {
    throw new ScriptError(
      `the script has ${script.length} tokens; this size's decoder FFN (${c.decoderFfn}) holds at most ${c.decoderFfn - 2}`,
    );
  }
}

/**
 * `count` vectors of `dim` values, each zero-mean with unit variance (so LayerNorm leaves them as
 * they are), as far from each other as cheaply possible: orthogonal while they fit, random after.
 */
export function spreadCodes(count: number, dim: number, rng: Rng): Float64Array[] {
  const codes: Float64Array[] = [];
  const orthogonal = count <= dim - 1;
  for (let i = 0; i < count; i++) {
    const v = new Float64Array(dim);
    for (let k = 0; k < dim; k++) v[k] = rng.normal();
    let mean = v.reduce((a, b) => a + b, 0) / dim;
    for (let k = 0; k < dim; k++) v[k] -= mean;
    if (orthogonal) {
      for (const u of codes) {
        const d = dot(u, v) / dim;
        for (let k = 0; k < dim; k++) v[k] -= d * u[k];
      }
      mean = v.reduce((a, b) => a + b, 0) / dim;
      for (let k = 0; k < dim; k++) v[k] -= mean;
    }
    const scale = Math.sqrt(dim / dot(v, v));
    for (let k = 0; k < dim; k++) v[k] *= scale;
    codes.push(v);
  }
  return codes;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Largest correlation between two distinct codes (−1 for fewer than two). */
export function maxCorrelation(codes: Float64Array[]): number {
  let worst = -1;
  for (let i = 0; i < codes.length; i++)
    for (let j = i + 1; j < codes.length; j++) worst = Math.max(worst, dot(codes[i], codes[j]) / codes[i].length);
  return worst;
}

export interface ScriptPlan {
  /** Tokens emitted at positions 0..n+1. */
  outputs: number[];
  positionCodeCorrelation: number;
  tokenCodeCorrelation: number;
}

/** Weights that make the decoder of `c` emit `script`; everything else comes from `base`. */
export function scriptedWeights(
  c: TextConfig,
  base: WeightSource,
  script: number[],
  seed: number,
): { weights: WeightSource; plan: ScriptPlan } {
  validateScript(script, c);
  const D = c.dModel;
  const F = c.decoderFfn;
  const outputs = scriptOutputs(script);
  const K = outputs.length; // lookup units (positions with their own code)
  const rng = new Rng(seed, 'script');
  const posCodes = spreadCodes(K, D, rng);
  const distinct = [...new Set(outputs)];
  const tokCodes = spreadCodes(distinct.length, D, rng);
  const tokCode = new Map(distinct.map((t, i) => [t, tokCodes[i]]));
  const posCorr = maxCorrelation(posCodes);
  const tokCorr = maxCorrelation(tokCodes);
  if (posCorr > 0.95 || tokCorr > 0.95)
    throw new ScriptError(`the script is too long for d_model ${D}: codes correlate up to ${Math.max(posCorr, tokCorr).toFixed(3)}`);

  const gamma = LOGIT_MARGIN / (D * (1 - Math.max(tokCorr, 0)));
  const positionScale = DOMINANCE * Math.max(gamma, 1);
  const threshold = (1 + Math.max(posCorr, 0)) / 2;
  const kappa = FIRE / (1 - threshold);
  const fired = FIRE; // GELU(10) = 10 to double precision

  const o = new Map<string, () => Float32Array>();
  const fill = (n: number, v: number) => () => new Float32Array(n).fill(v);
  const last = c.decoderLayers - 1;

  // Token embedding (also the tied LM head): quiet rows, except γ·u_t for every emitted token.
  const shared = () => {
    const e = new Rng(seed, W.shared).normalArray(VOCAB_SIZE * D, QUIET_STD);
    for (const [t, u] of tokCode) for (let k = 0; k < D; k++) e[t * D + k] = gamma * u[k];
    return e;
  };
  o.set(W.shared, shared);
  o.set(W.finalLogitsBias, fill(VOCAB_SIZE, 0));
  o.set(W.decPositions, () => {
    const rows = c.maxPositions + POSITION_OFFSET;
    const t = new Float32Array(rows * D);
    for (let r = 0; r < rows; r++) {
      const code = posCodes[Math.min(Math.max(r - POSITION_OFFSET, 0), K - 1)];
      for (let k = 0; k < D; k++) t[r * D + k] = positionScale * code[k];
    }
    return t;
  });
  const plainNorm = (name: string) => {
    o.set(`${name}.weight`, fill(D, 1));
    o.set(`${name}.bias`, fill(D, 0));
  };
  plainNorm(W.decEmbLn);
  for (let i = 0; i < c.decoderLayers; i++) {
    const p = W.dec(i);
    for (const proj of ['self_attn.out_proj', 'encoder_attn.out_proj']) {
      o.set(`${p}.${proj}.weight`, fill(D * D, 0));
      o.set(`${p}.${proj}.bias`, fill(D, 0));
    }
    for (const ln of ['self_attn_layer_norm', 'encoder_attn_layer_norm', 'final_layer_norm']) plainNorm(`${p}.${ln}`);
    if (i !== last) {
      o.set(`${p}.fc2.weight`, fill(F * D, 0));
      o.set(`${p}.fc2.bias`, fill(D, 0));
    }
  }
  // The lookup FFN, stored [in, out]: fc1 [D, F], fc2 [F, D].
  const p = W.dec(last);
  o.set(`${p}.fc1.weight`, () => {
    const w = new Float32Array(D * F);
    for (let q = 0; q < K; q++) for (let k = 0; k < D; k++) w[k * F + q] = (kappa * posCodes[q][k]) / D;
    return w;
  });
  o.set(`${p}.fc1.bias`, () => {
    const b = new Float32Array(F).fill(-FIRE);
    for (let q = 0; q < K; q++) b[q] = -kappa * threshold;
    return b;
  });
  o.set(`${p}.fc2.weight`, () => {
    const w = new Float32Array(F * D);
    for (let q = 0; q < K; q++) {
      const u = tokCode.get(outputs[q])!;
      for (let k = 0; k < D; k++) w[q * D + k] = (DOMINANCE * u[k]) / fired;
    }
    return w;
  });
  o.set(`${p}.fc2.bias`, fill(D, 0));

  return {
    weights: new OverriddenWeights(base, o),
    plan: { outputs, positionCodeCorrelation: posCorr, tokenCodeCorrelation: tokCorr },
  };
}
