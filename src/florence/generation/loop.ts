/**
 * Florence-2 generation on a KV-cached decoder (contract §6): greedy decoding and HF beam search
 * (`BeamSearchScorer` semantics, §6.3), with the reference processors. The encoder states are
 * computed once per image; the beams of an image read them through `rowItems`, and the decoder's
 * self-attention cache is reordered by beam source after every step.
 *
 * The items of a batch are independent: each has its own length limit, may be stopped on its own,
 * and leaves the batch (its rows dropped from the cache) as soon as it is final, when it is also
 * reported. Each item's ids and log-probabilities are those it gives alone.
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
  /** Per encoder item: its sequence, or null when `itemStopped` ended it. */
  sequences: (GeneratedSequence | null)[];
  /** Per encoder item: the decoder steps it took part in. */
  itemSteps: number[];
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
  /** Checked before every decoder step; true stops the whole generation with {@link GenerationStopped}. */
  shouldStop?: () => boolean;
  /**
   * Per encoder item, its own `maxNewTokens` (default `params.maxNewTokens` for all). An item's max
   * length and forced-EOS step follow its own limit, so its output is what it would be alone.
   */
  maxNewTokens?: readonly number[];
  /**
   * Checked for every live item before every decoder step; an item for which it returns true leaves
   * the batch (its rows are dropped) and ends as stopped (`null` in `sequences`).
   */
  itemStopped?: (item: number) => boolean;
  /**
   * Called once per item as soon as it is final (its sequence, or null when stopped), before any
   * later decoder step runs; `steps` is the decoder steps the item took part in. An exception
   * thrown here rejects the generation.
   */
  onItemDone?: (item: number, sequence: GeneratedSequence | null, steps: number) => void;
}

/** max_length of HF generate: the decoder start token plus at most `maxNewTokens`, bounded by the position table. */
export function maxLengthFor(p: GenerationParams, maxPositions: number): number {
  return maxLengthOf(p.maxNewTokens, maxPositions);
}

function maxLengthOf(maxNewTokens: number, maxPositions: number): number {
  // Tokens are fed at positions 0..L-2 (the last one is never fed), so L ≤ maxPositions + 1.
  return Math.min(1 + maxNewTokens, maxPositions + 1);
}

function processorParams(p: GenerationParams, maxLength: number): ProcessorParams {
  return { noRepeatNgramSize: p.noRepeatNgramSize, forcedBosTokenId: p.forcedBosTokenId, forcedEosTokenId: p.forcedEosTokenId, maxLength };
}

const lastTokens = (rows: number[][]) => BigInt64Array.from(rows.map((r) => BigInt(r[r.length - 1])));

/** Per encoder item: max length and logits-processor settings. */
interface ItemLimits {
  maxLength: number[];
  proc: ProcessorParams[];
}

function itemLimits(p: GenerationParams, options: GenerateOptions, batch: number, maxPositions: number): ItemLimits {
  const perItem = options.maxNewTokens ?? new Array<number>(batch).fill(p.maxNewTokens);
  if (perItem.length !== batch) throw new RangeError(`maxNewTokens has ${perItem.length} entries for a batch of ${batch}`);
  for (const m of perItem) if (!Number.isInteger(m) || m < 1) throw new RangeError(`maxNewTokens must be a positive integer: ${m}`);
  const maxLength = perItem.map((m) => maxLengthOf(m, maxPositions));
  return { maxLength, proc: maxLength.map((L) => processorParams(p, L)) };
}

/**
 * The decoder cache and, for each live row, the cache row it continues. Reordering, finished rows
 * and stopped items only update `rows`; the cache is gathered once, right before the next step.
 * It owns the cache between steps: `take` hands it to the step (which consumes it), `release`
 * frees what a generation leaves, however it ends.
 */
class RowCache {
  private cache: KvCache | null = null;
  private rows: number[] = [];
  private stepped = false;

  constructor(private readonly backend: ModelBackend) {}

  /** No step has run yet. */
  get empty(): boolean {
    return !this.stepped;
  }

  /** After a step: the new cache and the rows of it that go on (in their new order). */
  set(cache: KvCache, rows: number[]): void {
    this.cache = cache;
    this.rows = rows;
    this.stepped = true;
  }

  /** Keeps only the live rows at positions `kept`. */
  keep(kept: number[]): void {
    this.rows = kept.map((r) => this.rows[r]);
  }

  /** The cache laid out for the live rows, each reading encoder item `rowItems[r]`; it leaves this holder. */
  async take(rowItems: number[]): Promise<KvCache | null> {
    const c = this.cache;
    if (c === null) return null;
    this.cache = null;
    const identity = this.rows.length === c.rows && this.rows.every((r, i) => r === i);
    return identity ? c : await this.backend.selectRows(c, this.rows, rowItems);
  }

  release(): void {
    if (this.cache !== null) this.backend.releaseCache?.(this.cache);
    this.cache = null;
  }
}

/** Greedy or beam search, by `params.numBeams`. */
export function generate(
  backend: ModelBackend,
  encoder: EncoderStates,
  params: GenerationParams,
  options: GenerateOptions = {},
): Promise<GenerationOutput> {
  if (!Number.isInteger(params.numBeams) || params.numBeams < 1)
    throw new RangeError(`numBeams must be a positive integer: ${params.numBeams}`);
  if (!Number.isInteger(params.maxNewTokens) || params.maxNewTokens < 1)
    throw new RangeError(`maxNewTokens must be a positive integer: ${params.maxNewTokens}`);
  const limits = itemLimits(params, options, encoder.batch, backend.dims.maxPositions);
  return params.numBeams === 1 ? greedy(backend, encoder, params, limits, options) : beamSearch(backend, encoder, params, limits, options);
}

/** Per-item results and their early report. */
class ItemResults {
  readonly sequences: (GeneratedSequence | null)[];
  readonly itemSteps: number[];

  constructor(
    batch: number,
    private readonly onItemDone: GenerateOptions['onItemDone'],
  ) {
    this.sequences = new Array<GeneratedSequence | null>(batch).fill(null);
    this.itemSteps = new Array<number>(batch).fill(0);
  }

  finish(item: number, sequence: GeneratedSequence | null): void {
    this.sequences[item] = sequence;
    this.onItemDone?.(item, sequence, this.itemSteps[item]);
  }
}

/** Positions in `live` of the items that go on; the others are finished as stopped. */
function unstopped(live: number[], options: GenerateOptions, results: ItemResults): number[] | null {
  const stopped = options.itemStopped;
  if (!stopped) return null;
  const kept: number[] = [];
  live.forEach((b, q) => {
    if (stopped(b)) results.finish(b, null);
    else kept.push(q);
  });
  return kept.length === live.length ? null : kept;
}

async function greedy(
  backend: ModelBackend,
  encoder: EncoderStates,
  p: GenerationParams,
  limits: ItemLimits,
  options: GenerateOptions,
): Promise<GenerationOutput> {
  const V = backend.dims.vocabSize;
  const results = new ItemResults(encoder.batch, options.onItemDone);
  const seqs: GeneratedSequence[] = Array.from({ length: encoder.batch }, () => ({ ids: [p.decoderStartTokenId], logprobs: [] }));
  let live = seqs.map((_, b) => b);
  const cache = new RowCache(backend);
  let steps = 0;
  try {
    while (live.length > 0) {
      if (options.shouldStop?.()) throw new GenerationStopped(steps);
      const kept = unstopped(live, options, results);
      if (kept) {
        live = kept.map((q) => live[q]);
        cache.keep(kept);
        if (live.length === 0) break;
      }
      const out: DecoderStepOutput = await backend.decode({
        tokens: lastTokens(live.map((b) => seqs[b].ids)),
        rowItems: live,
        encoder,
        cache: await cache.take(live),
      });
      cache.set(out.cache, []); // held from here, so a failure below still releases it
      steps += 1;
      const keep: number[] = [];
      const finished: number[] = [];
      live.forEach((b, r) => {
        const seq = seqs[b];
        results.itemSteps[b] += 1;
        const scores = out.logits.subarray(r * V, (r + 1) * V);
        processScores(scores, seq.ids, limits.proc[b]);
        const next = argmax(scores);
        seq.ids.push(next);
        seq.logprobs.push(scores[next] - logSumExp(scores));
        if (next !== p.eosTokenId && seq.ids.length < limits.maxLength[b]) keep.push(r);
        else finished.push(b);
      });
      // Finished rows leave the batch (HF would keep padding them; the outputs are the same).
      live = keep.map((r) => live[r]);
      cache.set(out.cache, keep);
      for (const b of finished) results.finish(b, seqs[b]);
    }
  } finally {
    cache.release();
  }
  return { sequences: results.sequences, itemSteps: results.itemSteps, steps };
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
 * cache has one row per live item.
 */
async function firstBeamStep(
  backend: ModelBackend,
  encoder: EncoderStates,
  items: number[],
  startToken: number,
  K: number,
): Promise<DecoderStepOutput> {
  const V = backend.dims.vocabSize;
  const out = await backend.decode({ tokens: lastTokens(items.map(() => [startToken])), rowItems: items, encoder, cache: null });
  const logits = new Float32Array(items.length * K * V);
  for (let r = 0; r < items.length * K; r++) logits.set(out.logits.subarray(Math.floor(r / K) * V, (Math.floor(r / K) + 1) * V), r * V);
  return { logits, cache: out.cache };
}

/** The beams of the live items, item-major (K rows per item). */
interface BeamRows {
  ids: number[][];
  logprobs: number[][];
  scores: number[];
}

/**
 * HF beam search over a batch of items. An item leaves the batch (its K rows are dropped from later
 * steps) as soon as it is final: done by HF's `is_done`, at its own max length (then its live beams
 * are added as HF's `finalize` adds them), or stopped. The live items advance in lock-step from the
 * same start, so all rows of a step share one cache length.
 */
async function beamSearch(
  backend: ModelBackend,
  encoder: EncoderStates,
  p: GenerationParams,
  limits: ItemLimits,
  options: GenerateOptions,
): Promise<GenerationOutput> {
  const K = p.numBeams;
  const V = backend.dims.vocabSize;
  const promptLength = 1; // the decoder start token
  const results = new ItemResults(encoder.batch, options.onItemDone);
  const hyps = Array.from({ length: encoder.batch }, () => new Hypotheses(K, p.lengthPenalty, p.earlyStopping));
  const beamRows = (items: number[]) => items.flatMap((b) => new Array<number>(K).fill(b));
  let live = Array.from({ length: encoder.batch }, (_, b) => b);
  let rows: BeamRows = {
    ids: beamRows(live).map(() => [p.decoderStartTokenId]),
    logprobs: beamRows(live).map(() => []),
    // Only the first beam of an item is live at the start, so the K beams do not all pick the same token.
    scores: beamRows(live).map((_, r) => (r % K === 0 ? 0 : Math.fround(-1e9))),
  };
  const cache = new RowCache(backend);
  let steps = 0;

  /** The item's best hypothesis as HF `finalize` returns it, after adding `beams` (its live beams at its max length). */
  const finalize = (b: number, beams: BeamRows | null): GeneratedSequence => {
    const h = hyps[b];
    if (beams) beams.ids.forEach((ids, j) => h.add(ids, beams.logprobs[j], beams.scores[j], ids.length - promptLength));
    const best = h.best();
    // Hypotheses that ended on EOS carry its log-probability but not the token (HF appends it here).
    if (best.ids.length < limits.maxLength[b]) return { ids: [...best.ids, p.eosTokenId], logprobs: best.logprobs };
    return { ids: best.ids, logprobs: best.logprobs.slice(0, best.ids.length - 1) };
  };

  try {
    while (live.length > 0) {
      if (options.shouldStop?.()) throw new GenerationStopped(steps);
      const kept = unstopped(live, options, results);
      if (kept) {
        const keptRows = kept.flatMap((q) => Array.from({ length: K }, (_, j) => q * K + j));
        live = kept.map((q) => live[q]);
        rows = {
          ids: keptRows.map((r) => rows.ids[r]),
          logprobs: keptRows.map((r) => rows.logprobs[r]),
          scores: keptRows.map((r) => rows.scores[r]),
        };
        // Before the first step there is no cache; after it, it has K rows per item (see below).
        if (!cache.empty) cache.keep(keptRows);
        if (live.length === 0) break;
      }
      const rowItems = beamRows(live);
      const first = cache.empty;
      const curLength = rows.ids[0].length;
      const out = first
        ? await firstBeamStep(backend, encoder, live, p.decoderStartTokenId, K)
        : await backend.decode({ tokens: lastTokens(rows.ids), rowItems, encoder, cache: await cache.take(rowItems) });
      cache.set(out.cache, []); // held from here, so a failure below still releases it
      steps += 1;
      const scores = rows.ids.map((rowIds, r) => {
        const s = out.logits.subarray(r * V, (r + 1) * V);
        logSoftmaxInPlace(s);
        processScores(s, rowIds, limits.proc[rowItems[r]]);
        return s;
      });

      const next: BeamRows = { ids: [], logprobs: [], scores: [] };
      /** Rows of `out.cache` the next beams continue (after the first step it has one row per item). */
      const sources: number[] = [];
      const nextLive: number[] = [];
      const finished: [number, GeneratedSequence][] = [];
      live.forEach((b, q) => {
        results.itemSteps[b] += 1;
        const base = q * K;
        const candidates = topCandidates(scores.slice(base, base + K), rows.scores.slice(base, base + K), 2 * K, V);
        const beams: BeamRows = { ids: [], logprobs: [], scores: [] };
        const beamSources: number[] = [];
        for (const [rank, c] of candidates.entries()) {
          const src = base + Math.floor(c.index / V);
          const token = c.index % V;
          if (token === p.eosTokenId) {
            // An EOS outside the top K cannot finish a hypothesis (HF).
            if (rank >= K) continue;
            hyps[b].add(rows.ids[src], [...rows.logprobs[src], c.logprob], c.score, curLength + 1 - promptLength);
          } else {
            beams.ids.push([...rows.ids[src], token]);
            beams.logprobs.push([...rows.logprobs[src], c.logprob]);
            beams.scores.push(c.score);
            beamSources.push(first ? q : src);
          }
          if (beams.ids.length === K) break;
        }
        if (hyps[b].isDone(candidates[0].score, curLength + 1, promptLength)) finished.push([b, finalize(b, null)]);
        else if (curLength + 1 >= limits.maxLength[b]) finished.push([b, finalize(b, beams)]);
        else {
          nextLive.push(b);
          next.ids.push(...beams.ids);
          next.logprobs.push(...beams.logprobs);
          next.scores.push(...beams.scores);
          sources.push(...beamSources);
        }
      });
      live = nextLive;
      rows = next;
      cache.set(out.cache, sources);
      for (const [b, seq] of finished) results.finish(b, seq);
    }
  } finally {
    cache.release();
  }
  return { sequences: results.sequences, itemSteps: results.itemSteps, steps };
}
