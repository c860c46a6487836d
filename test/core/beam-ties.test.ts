/**
 * Beam search on exactly tied hypothesis scores, against HF `BeamHypotheses` / `BeamSearchScorer.finalize`:
 * finalize sorts the finished hypotheses by score (stably) and pops the last, so of tied best ones the
 * one added last wins; `add` evicts the first of the (score, index)-sorted list, so of tied worst ones
 * the one added first goes. Scripted logits (a function of each row's prefix) make the ties exact.
 */
import { strict as assert } from 'node:assert';
import * as ort from 'onnxruntime-node';
import { type DecoderStepInput, type EncoderStates, type KvCache, type ModelBackend } from '../../src/florence/generation/backend';
import { type GenerationParams, Hypotheses, generate } from '../../src/florence/generation/loop';
import { type ReferenceModel, beamGenerate } from '../helpers/reference-generation';

const V = 6;
const EOS = 2;
/** Logits over V tokens: `likely` at 0, the rest far below (exp underflows, so a single likely token has log-probability exactly 0). */
const peaked = (...likely: number[]) => Float32Array.from({ length: V }, (_, v) => (likely.includes(v) ? 0 : -1e4));

type Script = (prefix: number[]) => Float32Array;

/** After the forced BOS, tokens 3 and 4 tie; both continuations then end on EOS at once, with equal scores. */
const sameStep: Script = (p) => {
  const key = p.join(',');
  if (key === '2,0') return peaked(3, 4);
  if (key === '2,0,3' || key === '2,0,4') return peaked(EOS);
  return peaked(5);
};

/**
 * Tokens 3 and 4 tie; `…3` ends on EOS at once, `…4` goes on with certain tokens until the forced EOS,
 * so with length penalty 0 the later, longer hypothesis has exactly the same score.
 */
const laterStep: Script = (p) => {
  const key = p.join(',');
  if (key === '2,0') return peaked(3, 4);
  if (key === '2,0,3') return peaked(EOS);
  return peaked(3);
};

interface ScriptCache extends KvCache {
  prefixes: number[][];
}

/** Decoder whose cache is just each row's prefix, so logits follow the script. */
function scriptedBackend(script: Script): ModelBackend {
  const fail = () => Promise.reject(new Error('not used'));
  return {
    dims: { dModel: 1, decoderLayers: 0, decoderHeads: 1, headDim: 1, vocabSize: V, maxPositions: 64 },
    encodeImages: fail,
    embed: fail,
    encode: fail,
    async decode({ tokens, cache }: DecoderStepInput) {
      const prefixes = Array.from(tokens, (t, r) => [...((cache as ScriptCache | null)?.prefixes[r] ?? []), Number(t)]);
      const logits = new Float32Array(prefixes.length * V);
      prefixes.forEach((p, r) => logits.set(script(p), r * V));
      const next: ScriptCache = { rows: prefixes.length, length: prefixes[0].length, prefixes };
      return { logits, cache: next };
    },
    selectRows(cache: KvCache, rows: number[]) {
      const prefixes = rows.map((r) => (cache as ScriptCache).prefixes[r]);
      return { rows: rows.length, length: cache.length, prefixes } as ScriptCache;
    },
  };
}

/** The reference's graphs faked: embeddings carry the token ids (dModel 1), and the decoder reads them back. */
function scriptedReference(script: Script): ReferenceModel {
  const session = (run: (feeds: Record<string, ort.Tensor>) => Record<string, ort.Tensor>) =>
    ({ run: async (feeds: Record<string, ort.Tensor>) => run(feeds) }) as unknown as ort.InferenceSession;
  const embed = session(({ input_ids }) => ({
    inputs_embeds: new ort.Tensor('float32', Float32Array.from(input_ids.data as BigInt64Array, Number), [...input_ids.dims, 1]),
  }));
  const decoder = session(({ inputs_embeds }) => {
    const [R, T] = inputs_embeds.dims;
    const ids = inputs_embeds.data as Float32Array;
    const logits = new Float32Array(R * T * V);
    for (let r = 0; r < R; r++) logits.set(script(Array.from(ids.subarray(r * T, (r + 1) * T))), (r * T + T - 1) * V);
    return { logits: new ort.Tensor('float32', logits, [R, T, V]) };
  });
  const unused = session(() => assert.fail('not used'));
  return {
    vision: unused,
    embed,
    encoder: unused,
    decoder,
    layers: 0,
    heads: 1,
    headDim: 1,
    dModel: 1,
    vocabSize: V,
    release: async () => {},
  };
}

const encoder: EncoderStates = { states: new Float32Array(1), mask: BigInt64Array.of(1n), batch: 1, length: 1 };

const params = (maxNewTokens: number, lengthPenalty: number, earlyStopping: boolean): GenerationParams => ({
  numBeams: 2,
  maxNewTokens,
  lengthPenalty,
  earlyStopping,
  noRepeatNgramSize: 3,
  decoderStartTokenId: 2,
  eosTokenId: EOS,
  padTokenId: 1,
  forcedBosTokenId: 0,
  forcedEosTokenId: EOS,
});

describe('beam search ties (HF BeamHypotheses)', () => {
  const cases = [
    { name: 'two hypotheses finished at the same step', script: sameStep, maxNewTokens: 10, lengthPenalty: 1, expected: [2, 0, 4, 2] },
    { name: 'a hypothesis finished later than its tie', script: laterStep, maxNewTokens: 4, lengthPenalty: 0, expected: [2, 0, 4, 3, 2] },
  ];
  for (const c of cases) {
    for (const earlyStopping of [true, false]) {
      it(`the tied hypothesis added last wins: ${c.name}, early stopping ${earlyStopping}`, async () => {
        const ours = await generate(scriptedBackend(c.script), encoder, params(c.maxNewTokens, c.lengthPenalty, earlyStopping));
        assert.deepEqual(
          ours.sequences.map((s) => s?.ids),
          [c.expected],
        );
        const ref = await beamGenerate(scriptedReference(c.script), encoder, {
          numBeams: 2,
          maxNewTokens: c.maxNewTokens,
          lengthPenalty: c.lengthPenalty,
          earlyStopping,
        });
        assert.deepEqual(ref, [c.expected]);
      });
    }
  }
});

describe('Hypotheses on ties', () => {
  const ids = (h: Hypotheses) => h.beams.map((b) => b.ids[1]);
  // Scores are sumLogprobs / 1: generated length 1.
  const add = (h: Hypotheses, token: number, score: number) => h.add([2, token], [score], score, 1);

  it('evicts the earliest of the tied worst, and best is the latest of the tied best', () => {
    const h = new Hypotheses(2, 1, true);
    add(h, 10, -2);
    add(h, 11, -2);
    add(h, 12, -1);
    assert.deepEqual(ids(h), [11, 12]);
    add(h, 13, -1);
    assert.deepEqual(ids(h), [12, 13]);
    add(h, 14, -1); // not better than the worst: dropped
    assert.deepEqual(ids(h), [12, 13]);
    assert.equal(h.best().ids[1], 13);
  });

  it('the same with -inf scores (banned tokens at the forced-EOS step)', () => {
    const h = new Hypotheses(2, 1, true);
    add(h, 10, -Infinity);
    add(h, 11, -Infinity);
    assert.equal(h.best().ids[1], 11);
    add(h, 12, -3);
    assert.deepEqual(ids(h), [11, 12]);
  });
});
