/**
 * A deliberately plain reference of Florence-2 generation (contract §6), written for tests only:
 * no KV cache (every step re-runs the decoder's no-cache branch over the whole prefix), greedy
 * decoding and HF beam search (`BeamSearchScorer` semantics, §6.3) with the reference logits
 * processors (no_repeat_ngram, forced BOS, forced EOS). Production code must agree with it.
 */
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const BOS = 0;
export const PAD = 1;
export const EOS = 2;
export const DECODER_START = 2;

export interface ReferenceModel {
  vision: ort.InferenceSession;
  embed: ort.InferenceSession;
  encoder: ort.InferenceSession;
  decoder: ort.InferenceSession;
  layers: number;
  heads: number;
  headDim: number;
  dModel: number;
  vocabSize: number;
  release(): Promise<void>;
}

export async function loadReferenceModel(dir: string, suffix = ''): Promise<ReferenceModel> {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const t = config.text_config;
  const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 };
  const open = (name: string) => ort.InferenceSession.create(join(dir, 'onnx', `${name}${suffix}.onnx`), options);
  const [vision, embed, encoder, decoder] = await Promise.all([
    open('vision_encoder'),
    open('embed_tokens'),
    open('encoder_model'),
    open('decoder_model_merged'),
  ]);
  return {
    vision,
    embed,
    encoder,
    decoder,
    layers: t.decoder_layers,
    heads: t.decoder_attention_heads,
    headDim: t.d_model / t.decoder_attention_heads,
    dModel: t.d_model,
    vocabSize: t.vocab_size,
    async release() {
      await Promise.all([vision.release(), embed.release(), encoder.release(), decoder.release()]);
    },
  };
}

const i64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

async function embed(m: ReferenceModel, rows: number[][]): Promise<ort.Tensor> {
  return (await m.embed.run({ input_ids: i64(rows) })).inputs_embeds;
}

export interface Encoded {
  /** [B, S, D] */
  states: Float32Array;
  /** [B, S] */
  mask: BigInt64Array;
  batch: number;
  length: number;
}

/**
 * Vision encoder + prompt embeddings + encoder. `prompts` are token id rows; shorter rows are
 * right-padded with `<pad>` and masked out, as the tokenizer's attention mask does.
 */
export async function encodeInputs(m: ReferenceModel, pixelValues: ort.Tensor, prompts: number[][]): Promise<Encoded> {
  const B = prompts.length;
  const T = Math.max(...prompts.map((p) => p.length));
  const padded = prompts.map((p) => [...p, ...Array(T - p.length).fill(PAD)]);
  const image = (await m.vision.run({ pixel_values: pixelValues })).image_features;
  const text = await embed(m, padded);
  const N = image.dims[1];
  const D = m.dModel;
  const S = N + T;
  const states = new Float32Array(B * S * D);
  const mask = new BigInt64Array(B * S);
  const img = image.data as Float32Array;
  const txt = text.data as Float32Array;
  for (let b = 0; b < B; b++) {
    states.set(img.subarray(b * N * D, (b + 1) * N * D), b * S * D);
    states.set(txt.subarray(b * T * D, (b + 1) * T * D), b * S * D + N * D);
    for (let s = 0; s < S; s++) mask[b * S + s] = s < N || s - N < prompts[b].length ? 1n : 0n;
  }
  const out = await m.encoder.run({
    inputs_embeds: new ort.Tensor('float32', states, [B, S, D]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
  });
  return { states: out.last_hidden_state.data as Float32Array, mask, batch: B, length: S };
}

/** Last-position logits of every row, re-running the decoder over the full prefix (no cache). */
async function lastLogits(m: ReferenceModel, enc: Encoded, rowItem: number[], rows: number[][]): Promise<Float32Array[]> {
  const R = rows.length;
  const S = enc.length;
  const D = m.dModel;
  const states = new Float32Array(R * S * D);
  const mask = new BigInt64Array(R * S);
  rowItem.forEach((b, r) => {
    states.set(enc.states.subarray(b * S * D, (b + 1) * S * D), r * S * D);
    mask.set(enc.mask.subarray(b * S, (b + 1) * S), r * S);
  });
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: await embed(m, rows),
    encoder_hidden_states: new ort.Tensor('float32', states, [R, S, D]),
    encoder_attention_mask: new ort.Tensor('int64', mask, [R, S]),
    use_cache_branch: new ort.Tensor('bool', Uint8Array.of(0), [1]),
  };
  for (let i = 0; i < m.layers; i++) {
    for (const part of ['decoder', 'encoder']) {
      for (const kv of ['key', 'value'])
        feeds[`past_key_values.${i}.${part}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [R, m.heads, 0, m.headDim]);
    }
  }
  const { logits } = await m.decoder.run(feeds, ['logits']);
  const [, T, V] = logits.dims;
  const data = logits.data as Float32Array;
  return rows.map((_, r) => data.slice((r * T + T - 1) * V, (r * T + T) * V));
}

/** Applies no_repeat_ngram(n), forced BOS and forced EOS to one row's scores in place (HF order). */
export function applyProcessors(scores: Float32Array, ids: number[], maxLength: number, noRepeatNgram: number): void {
  const len = ids.length;
  if (noRepeatNgram > 0 && len + 1 >= noRepeatNgram) {
    const prefix = ids.slice(len - (noRepeatNgram - 1));
    for (let i = 0; i + noRepeatNgram <= len; i++) {
      let same = true;
      for (let k = 0; k < noRepeatNgram - 1 && same; k++) same = ids[i + k] === prefix[k];
      if (same) scores[ids[i + noRepeatNgram - 1]] = -Infinity;
    }
  }
  const force = (token: number) => {
    scores.fill(-Infinity);
    scores[token] = 0;
  };
  if (len === 1) force(BOS);
  if (len === maxLength - 1) force(EOS);
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function logSoftmax(a: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of a) if (v > max) max = v;
  let sum = 0;
  for (const v of a) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - lse;
  return out;
}

export interface GenerationParams {
  maxNewTokens: number;
  noRepeatNgram?: number;
}

/** Greedy decoding; returns each item's ids from the decoder start token through EOS (or the length limit). */
export async function greedyGenerate(m: ReferenceModel, enc: Encoded, p: GenerationParams): Promise<number[][]> {
  const maxLength = 1 + p.maxNewTokens;
  const seqs = Array.from({ length: enc.batch }, () => [DECODER_START]);
  const live = seqs.map((_, b) => b);
  while (live.length > 0) {
    const logits = await lastLogits(
      m,
      enc,
      live,
      live.map((b) => seqs[b]),
    );
    for (let r = live.length - 1; r >= 0; r--) {
      const seq = seqs[live[r]];
      applyProcessors(logits[r], seq, maxLength, p.noRepeatNgram ?? 3);
      const next = argmax(logits[r]);
      seq.push(next);
      if (next === EOS || seq.length >= maxLength) live.splice(r, 1);
    }
  }
  return seqs;
}

export interface BeamParams extends GenerationParams {
  numBeams: number;
  lengthPenalty?: number;
  earlyStopping: boolean;
}

interface Hyp {
  score: number;
  ids: number[];
}

class Hypotheses {
  readonly beams: Hyp[] = [];
  worst = 1e9;
  constructor(
    private readonly k: number,
    private readonly lengthPenalty: number,
    private readonly earlyStopping: boolean,
  ) {}

  add(ids: number[], sumLogprobs: number, generatedLen: number): void {
    const score = sumLogprobs / generatedLen ** this.lengthPenalty;
    if (this.beams.length < this.k || score > this.worst) {
      this.beams.push({ score, ids });
      if (this.beams.length > this.k) {
        // HF sorts (score, index) pairs: of tied worst, the earliest goes.
        const order = this.beams.map((h, i) => [h.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(order[0][1], 1);
        this.worst = order[1][0];
      } else {
        this.worst = Math.min(score, this.worst);
      }
    }
  }

  isDone(bestSumLogprobs: number, curLen: number): boolean {
    if (this.beams.length < this.k) return false;
    if (this.earlyStopping) return true;
    return this.worst >= bestSumLogprobs / (curLen - 1) ** this.lengthPenalty;
  }
}

/** HF beam search (§6.3): returns the best hypothesis per item, with EOS appended as HF's finalize does. */
export async function beamGenerate(m: ReferenceModel, enc: Encoded, p: BeamParams): Promise<number[][]> {
  const K = p.numBeams;
  const B = enc.batch;
  const lp = p.lengthPenalty ?? 1;
  const maxLength = 1 + p.maxNewTokens;
  let ids: number[][] = Array.from({ length: B * K }, () => [DECODER_START]);
  let beamScores: number[] = Array.from({ length: B * K }, (_, r) => (r % K === 0 ? 0 : -1e9));
  const hyps = Array.from({ length: B }, () => new Hypotheses(K, lp, p.earlyStopping));
  const done = new Array<boolean>(B).fill(false);
  const rowItem = ids.map((_, r) => Math.floor(r / K));

  while (true) {
    const curLen = ids[0].length;
    const logits = await lastLogits(m, enc, rowItem, ids);
    const scores = logits.map((l, r) => {
      const s = logSoftmax(l);
      applyProcessors(s, ids[r], maxLength, p.noRepeatNgram ?? 3);
      for (let v = 0; v < s.length; v++) s[v] += beamScores[r];
      return s;
    });
    const V = scores[0].length;
    const nextIds: number[][] = [];
    const nextScores: number[] = [];
    for (let b = 0; b < B; b++) {
      if (done[b]) {
        for (let j = 0; j < K; j++) {
          nextIds.push([...ids[b * K], PAD]);
          nextScores.push(0);
        }
        continue;
      }
      // top 2K over the item's K·V candidates, best first (ties: lower index first)
      const candidates: { score: number; beam: number; token: number }[] = [];
      for (let j = 0; j < K; j++) {
        const s = scores[b * K + j];
        for (let v = 0; v < V; v++) {
          const value = s[v];
          if (candidates.length < 2 * K || value > candidates[candidates.length - 1].score) {
            candidates.push({ score: value, beam: j, token: v });
            candidates.sort((x, y) => y.score - x.score || x.beam * V + x.token - (y.beam * V + y.token));
            if (candidates.length > 2 * K) candidates.pop();
          }
        }
      }
      let added = 0;
      for (const [rank, c] of candidates.entries()) {
        const src = ids[b * K + c.beam];
        if (c.token === EOS) {
          if (rank >= K) continue;
          hyps[b].add([...src], c.score, curLen);
        } else {
          nextIds.push([...src, c.token]);
          nextScores.push(c.score);
          added += 1;
        }
        if (added === K) break;
      }
      done[b] = done[b] || hyps[b].isDone(candidates[0].score, curLen + 1);
    }
    ids = nextIds;
    beamScores = nextScores;
    if (done.every(Boolean) || ids[0].length >= maxLength) break;
  }
  const out: number[][] = [];
  for (let b = 0; b < B; b++) {
    if (!done[b]) for (let j = 0; j < K; j++) hyps[b].add(ids[b * K + j], beamScores[b * K + j], ids[b * K + j].length - 1);
    // HF finalize sorts stably by score and pops the last: of tied best, the last added wins.
    const best = hyps[b].beams.reduce((x, y) => (y.score >= x.score ? y : x));
    out.push(best.ids.length < maxLength ? [...best.ids, EOS] : best.ids);
  }
  return out;
}
