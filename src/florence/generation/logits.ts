/**
 * The reference logits processors (HF order: no-repeat-ngram, forced BOS, forced EOS) and the
 * log-softmax, over one row's scores in place.
 */

/** Bans every token that would repeat an n-gram already in `ids` (HF `NoRepeatNGramLogitsProcessor`). */
export function banRepeatedNgrams(scores: Float32Array, ids: readonly number[], n: number): void {
  const len = ids.length;
  if (n <= 0 || len + 1 < n) return;
  const start = len - (n - 1);
  for (let i = 0; i + n <= len; i++) {
    let same = true;
    for (let k = 0; k < n - 1 && same; k++) same = ids[i + k] === ids[start + k];
    if (same) scores[ids[i + n - 1]] = -Infinity;
  }
}

/** Leaves only `token` possible (score 0 in log space, -inf elsewhere), as HF's forced BOS/EOS do. */
export function forceToken(scores: Float32Array, token: number): void {
  scores.fill(-Infinity);
  scores[token] = 0;
}

export interface ProcessorParams {
  noRepeatNgramSize: number;
  forcedBosTokenId: number | null;
  forcedEosTokenId: number | null;
  /** max_length: decoder start token included. */
  maxLength: number;
}

/** Applies the processors for a row whose tokens so far are `ids` (decoder start included). */
export function processScores(scores: Float32Array, ids: readonly number[], p: ProcessorParams): void {
  banRepeatedNgrams(scores, ids, p.noRepeatNgramSize);
  if (p.forcedBosTokenId !== null && ids.length === 1) forceToken(scores, p.forcedBosTokenId);
  if (p.forcedEosTokenId !== null && ids.length === p.maxLength - 1) forceToken(scores, p.forcedEosTokenId);
}

/** log(sum(exp(x))) of a row, in double precision. */
export function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i] - max);
  return max + Math.log(sum);
}

/** In-place log-softmax; values are stored as float32, as torch's float32 scores are. */
export function logSoftmaxInPlace(x: Float32Array): void {
  const lse = logSumExp(x);
  for (let i = 0; i < x.length; i++) x[i] = x[i] - lse;
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
