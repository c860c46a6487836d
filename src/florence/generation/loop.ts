/**
 * Florence-2 generation on a KV-cached decoder (contract §6): greedy decoding and HF beam search
 * (`BeamSearchScorer` semantics, §6.3), with the reference processors. The encoder states are
 * computed once per image; the beams of an image read them through `rowItems`, and the decoder's
 * self-attention cache is reordered by beam source after every step.
 */
import { type DecoderStepOutput, type EncoderStates, type KvCache, type ModelBackend } from './backend';
import { type ProcessorParams, argmax, logSoftmaxInPlace, logSumExp, processScores } from './logits';

export interface GenerationParams {
  maxNewTokens: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  noRepeatNgramSize: number;
  decoderStartTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  forcedBosTokenId: number | null;
  forcedEosTokenId: number | null;
}

export interface GeneratedSequence {
  /** Token ids from the decoder start token through `</s>` (absent when the length limit cut it). */
  ids: number[];
  /**
   * Log-probability of each generated token (ids[1..]) under the processed distribution of its step;
   * forced tokens get 0.
   */
  logprobs: number[];
}

export interface GenerationOutput {
  sequences: GeneratedSequence[];
  /** Decoder steps run (each one batched over all live rows). */
  steps: number;
}

/** Thrown between decoder steps when `shouldStop` says so. */
export class GenerationStopped extends Error {
  constructor(readonly steps: number) {
    super(`generation stopped after ${steps} decoder steps`);
  }
}

export interface GenerateOptions {
  /** Checked before every decoder step; true stops generation with {@link GenerationStopped}. */
  shouldStop?: () => boolean;
}

/** max_length of HF generate: the decoder start token plus at most `maxNewTokens`, bounded by the position table. */
export function maxLengthFor(p: GenerationParams, maxPositions: number): number {
  // Tokens are fed at positions 0..L-2 (the last one is never fed), so L ≤ maxPositions + 1.
  return Math.min(1 + p.maxNewTokens, maxPositions + 1);
}

function processorParams(p: GenerationParams, maxLength: number): ProcessorParams {
  return { noRepeatNgramSize: p.noRepeatNgramSize, forcedBosTokenId: p.forcedBosTokenId, forcedEosTokenId: p.forcedEosTokenId, maxLength };
}

const lastTokens = (rows: number[][]) => BigInt64Array.from(rows.map((r) => BigInt(r[r.length - 1])));

/** Greedy or beam search, by `params.numBeams`. */
export function generate(backend: ModelBackend, encoder: EncoderStates, params: GenerationParams, options: GenerateOptions = {}): Promise<GenerationOutput> {
  if (!Number.isInteger(params.numBeams) || params.numBeams < 1) throw new RangeError(`numBeams must be a positive integer: ${params.numBeams}`);
  if (!Number.isInteger(params.maxNewTokens) || params.maxNewTokens < 1) throw new RangeError(`maxNewTokens must be a positive integer: ${params.maxNewTokens}`);
  return params.numBeams === 1 ? greedy(backend, encoder, params, options) : beamSearch(backend, encoder, params, options);
}

async function greedy(backend: ModelBackend, encoder: EncoderStates, p: GenerationParams, options: GenerateOptions): Promise<GenerationOutput> {
  const maxLength = maxLengthFor(p, backend.dims.maxPositions);
  const proc = processorParams(p, maxLength);
  const V = backend.dims.vocabSize;
  const sequences: GeneratedSequence[] = Array.from({ length: encoder.batch }, () => ({ ids: [p.decoderStartTokenId], logprobs: [] }));
  let live = sequences.map((_, b) => b);
  let cache: KvCache | null = null;
  let steps = 0;
  while (live.length > 0) {
    if (options.shouldStop?.()) throw new GenerationStopped(steps);
    const out: DecoderStepOutput = await backend.decode({ tokens: lastTokens(live.map((b) => sequences[b].ids)), rowItems: live, encoder, cache });
    steps += 1;
    const keep: number[] = [];
    live.forEach((b, r) => {
      const seq = sequences[b];
      const scores = out.logits.subarray(r * V, (r + 1) * V);
      processScores(scores, seq.ids, proc);
      const next = argmax(scores);
      seq.ids.push(next);
      seq.logprobs.push(scores[next] - logSumExp(scores));
      if (next !== p.eosTokenId && seq.ids.length < maxLength) keep.push(r);
    });
    // Finished rows leave the batch (HF would keep padding them; the outputs are the same).
    if (keep.length === live.length) cache = out.cache;
    else if (keep.length > 0) {
      live = keep.map((r) => live[r]);
      cache = backend.selectRows(out.cache, keep, live);
    } else live = [];
  }
  return { sequences, steps };
}

interface Hypothesis {
  score: number;
  ids: number[];
  logprobs: number[];
}

/**
 * The finished hypotheses of one item (HF `BeamHypotheses`), in insertion order. Ties follow HF:
 * eviction drops the earliest of the tied worst, `best` takes the latest of the tied best.
 * Exported for tests.
 */
export class Hypotheses {
  readonly beams: Hypothesis[] = [];
  private worst = 1e9;

  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
    private readonly earlyStopping: boolean,
  ) {}

  add(ids: number[], logprobs: number[], sumLogprobs: number, generatedLength: number): void {
    const score = sumLogprobs / generatedLength ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worst) {
      this.beams.push({ score, ids, logprobs });
      if (this.beams.length > this.numBeams) {
        // HF sorts (score, index) pairs; the index tie-break also covers -inf - -inf = NaN.
        const order = this.beams.map((h, i) => [h.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(order[0][1], 1);
        this.worst = order[1][0];
      } else {
        this.worst = Math.min(score, this.worst);
      }
    }
  }

  /** `curLength` is the sequence length the candidate scores were computed for (input length + 1). */
  isDone(bestSumLogprobs: number, curLength: number, promptLength: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping) return true;
    return this.worst >= bestSumLogprobs / (curLength - promptLength) ** this.lengthPenalty;
  }

  /** HF `finalize` sorts stably by score and pops the last, so the last added of tied best wins. */
  best(): Hypothesis {
    return this.beams.reduce((a, b) => (b.score >= a.score ? b : a));
  }
}

interface Candidate {
  score: number;
  /** Index in the item's [beam × vocab] score table, for ordering ties like a stable top-k. */
  index: number;
  logprob: number;
}

/** The `k` best candidates of one item over its beams' rows, best first. */
function topCandidates(rows: Float32Array[], beamScores: number[], k: number, V: number): Candidate[] {
  const top: Candidate[] = [];
  let floor = -Infinity;
  for (let j = 0; j < rows.length; j++) {
    const row = rows[j];
    const base = beamScores[j];
    for (let v = 0; v < V; v++) {
      const lp = row[v];
      // Banned tokens (-inf) still count, as in torch.topk: at the forced-EOS step they fill the live beams.
      const score = Math.fround(lp + base);
      if (top.length === k && score <= floor) continue;
      const c = { score, index: j * V + v, logprob: lp };
      let at = top.length;
      while (at > 0 && top[at - 1].score < score) at--;
      top.splice(at, 0, c);
      if (top.length > k) top.pop();
      if (top.length === k) floor = top[k - 1].score;
    }
  }
  return top;
}

/**
 * The first beam step: every beam of an image holds only the decoder start token, so the decoder
 * runs once per image (not once per beam: the cross-attention keys and values over ~590 encoder
 * states are the costly part) and its logits are copied to the image's beam rows. The returned
 * cache has one row per image.
 */
async function firstBeamStep(backend: ModelBackend, encoder: EncoderStates, ids: number[][], K: number): Promise<DecoderStepOutput> {
  const B = encoder.batch;
  const V = backend.dims.vocabSize;
  const items = Array.from({ length: B }, (_, b) => b);
  const out = await backend.decode({ tokens: lastTokens(items.map((b) => ids[b * K])), rowItems: items, encoder, cache: null });
  const logits = new Float32Array(B * K * V);
  for (let r = 0; r < B * K; r++) logits.set(out.logits.subarray(Math.floor(r / K) * V, (Math.floor(r / K) + 1) * V), r * V);
  return { logits, cache: out.cache };
}

async function beamSearch(backend: ModelBackend, encoder: EncoderStates, p: GenerationParams, options: GenerateOptions): Promise<GenerationOutput> {
  const K = p.numBeams;
  const B = encoder.batch;
  const V = backend.dims.vocabSize;
  const maxLength = maxLengthFor(p, backend.dims.maxPositions);
  const proc = processorParams(p, maxLength);
  const promptLength = 1; // the decoder start token
  const rowItems = Array.from({ length: B * K }, (_, r) => Math.floor(r / K));
  let ids: number[][] = rowItems.map(() => [p.decoderStartTokenId]);
  let logprobs: number[][] = rowItems.map(() => []);
  // Only the first beam of an item is live at the start, so the K beams do not all pick the same token.
  let beamScores: number[] = rowItems.map((_, r) => (r % K === 0 ? 0 : Math.fround(-1e9)));
  const hyps = Array.from({ length: B }, () => new Hypotheses(K, p.lengthPenalty, p.earlyStopping));
  const done = new Array<boolean>(B).fill(false);
  let cache: KvCache | null = null;
  let steps = 0;

  while (true) {
    if (options.shouldStop?.()) throw new GenerationStopped(steps);
    const curLength = ids[0].length;
    const out = cache === null ? await firstBeamStep(backend, encoder, ids, K) : await backend.decode({ tokens: lastTokens(ids), rowItems, encoder, cache });
    steps += 1;
    const scores = ids.map((rowIds, r) => {
      const s = out.logits.subarray(r * V, (r + 1) * V);
      logSoftmaxInPlace(s);
      processScores(s, rowIds, proc);
      return s;
    });

    const nextIds: number[][] = [];
    const nextLogprobs: number[][] = [];
    const nextScores: number[] = [];
    const sources: number[] = [];
    for (let b = 0; b < B; b++) {
      const first = b * K;
      if (done[b]) {
        for (let j = 0; j < K; j++) {
          nextIds.push([...ids[first], p.padTokenId]);
          nextLogprobs.push([...logprobs[first], 0]);
          nextScores.push(0);
          sources.push(first);
        }
        continue;
      }
      const candidates = topCandidates(scores.slice(first, first + K), beamScores.slice(first, first + K), 2 * K, V);
      let added = 0;
      for (const [rank, c] of candidates.entries()) {
        const src = first + Math.floor(c.index / V);
        const token = c.index % V;
        if (token === p.eosTokenId) {
          // An EOS outside the top K cannot finish a hypothesis (HF).
          if (rank >= K) continue;
          hyps[b].add(ids[src], [...logprobs[src], c.logprob], c.score, curLength + 1 - promptLength);
        } else {
          nextIds.push([...ids[src], token]);
          nextLogprobs.push([...logprobs[src], c.logprob]);
          nextScores.push(c.score);
          sources.push(src);
          added += 1;
        }
        if (added === K) break;
      }
      done[b] = hyps[b].isDone(candidates[0].score, curLength + 1, promptLength);
    }
    ids = nextIds;
    logprobs = nextLogprobs;
    beamScores = nextScores;
    if (done.every(Boolean) || ids[0].length >= maxLength) break;
    // After the first step the cache has one row per image (see firstBeamStep): map beam rows to it.
    cache = backend.selectRows(out.cache, steps === 1 ? sources.map((r) => Math.floor(r / K)) : sources, rowItems);
  }

  const sequences: GeneratedSequence[] = hyps.map((h, b) => {
    if (!done[b]) {
      for (let j = 0; j < K; j++) {
        const r = b * K + j;
        h.add(ids[r], logprobs[r], beamScores[r], ids[r].length - promptLength);
      }
    }
    const best = h.best();
    // Hypotheses that ended on EOS carry its log-probability but not the token (HF appends it here).
    if (best.ids.length < maxLength) return { ids: [...best.ids, p.eosTokenId], logprobs: best.logprobs };
    return { ids: best.ids, logprobs: best.logprobs.slice(0, best.ids.length - 1) };
  });
  return { sequences, steps };
}
