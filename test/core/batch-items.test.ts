/**
 * Batching requests from different callers: each item of a batch is limited, stopped, failed,
 * timed and reported on its own, and batching changes no answer (token ids, text, parsed result,
 * scores are those of the item run alone). On a scripted in-process decoder (row counts, callback
 * order, exact ids and log-probabilities) and on synthetic ONNX models through the pipeline.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { DecoderStepInput, EncoderStates, KvCache, ModelBackend } from '../../src/florence/generation/backend';
import {
  type GenerateOptions,
  type GeneratedSequence,
  type GenerationParams,
  GenerationStopped,
  generate,
} from '../../src/florence/generation/loop';
import {
  GenerationOptionError,
  type PipelineParts,
  type RunOutcome,
  type RunRequest,
  type RunResult,
  runBatch,
  runBatchSettled,
} from '../../src/florence/pipeline';
import { PromptError } from '../../src/florence/prompts';
import { ImageDecodeError, preprocessOptionsFromConfig, readPreprocessorConfig } from '../../src/florence/preprocess';
import { FlorenceTokenizer } from '../../src/florence/tokenizer';
import { readModelConfig } from '../../src/florence/model-config';
import { OrtBackend } from '../../src/runtime/ort-backend';
import { Florence2 } from '../../src/index';
import { carTiny, randomTiny, tinyModel } from '../helpers/synth-models';

// ---------------------------------------------------------------------------------------------
// A scripted in-process decoder: logits are a function of (encoder item, prefix), so a row's
// output does not depend on the batch around it, and each call's rows are recorded.

const V = 8;
const EOS = 2;

/** Deterministic pseudo-random logits in [-3, 3) for a prefix. */
function hashed(item: number, prefix: number[], v: number): number {
  let h = 2166136261 ^ (item * 7919);
  for (const t of [...prefix, v]) h = Math.imul(h ^ (t + 1), 16777619);
  return (((h >>> 0) % 6000) / 1000 - 3) * 1;
}

/** Item scripts: `endAt` = the prefix length from which EOS is certain (Infinity: EOS never likely). */
const script = (endAt: number) => (item: number, prefix: number[]) =>
  Float32Array.from({ length: V }, (_, v) => (v === EOS ? (prefix.length >= endAt ? 20 : -5) : hashed(item, prefix, v)));

type Script = (item: number, prefix: number[]) => Float32Array;

interface ScriptCache extends KvCache {
  prefixes: number[][];
}

interface Recording {
  /** Rows of every decode call, in order. */
  rows: number[];
  /** Items of the rows of every decode call. */
  rowItems: number[][];
  /** Event log: `decode` per call, `done <item>` per onItemDone. */
  events: string[];
}

/** `scripts[b]` scripts encoder item b; `itemIds[b]` is the identity it is hashed as (the same for an item run alone). */
function scriptedBackend(scripts: Script[], itemIds: number[], rec: Recording, fail?: (call: number) => boolean): ModelBackend {
  const unused = () => Promise.reject(new Error('not used'));
  return {
    dims: { dModel: 1, decoderLayers: 0, decoderHeads: 1, headDim: 1, vocabSize: V, maxPositions: 64 },
    encodeImages: unused,
    embed: unused,
    encode: unused,
    async decode({ tokens, cache, rowItems }: DecoderStepInput) {
      if (fail?.(rec.rows.length)) throw new Error('decoder failed');
      const c = cache as ScriptCache | null;
      assert.equal(rowItems.length, tokens.length);
      if (c) assert.equal(c.rows, tokens.length, 'cache rows follow the batch rows');
      const prefixes = Array.from(tokens, (t, r) => [...(c?.prefixes[r] ?? []), Number(t)]);
      // The decoder has no attention mask: all rows of a step must share one cache length.
      assert.ok(
        prefixes.every((p) => p.length === prefixes[0].length),
        'rows of one step share a length',
      );
      rec.rows.push(tokens.length);
      rec.rowItems.push([...rowItems]);
      rec.events.push('decode');
      const logits = new Float32Array(prefixes.length * V);
      prefixes.forEach((p, r) => logits.set(scripts[rowItems[r]](itemIds[rowItems[r]], p), r * V));
      return { logits, cache: { rows: prefixes.length, length: prefixes[0].length, prefixes } as ScriptCache };
    },
    selectRows(cache: KvCache, rows: number[]) {
      const prefixes = rows.map((r) => (cache as ScriptCache).prefixes[r]);
      return { rows: rows.length, length: cache.length, prefixes } as ScriptCache;
    },
  };
}

const encoderOf = (batch: number): EncoderStates => ({
  states: new Float32Array(batch),
  mask: new BigInt64Array(batch).fill(1n),
  batch,
  length: 1,
});
const newRecording = (): Recording => ({ rows: [], rowItems: [], events: [] });

const params = (numBeams: number, maxNewTokens = 30, earlyStopping = true): GenerationParams => ({
  numBeams,
  maxNewTokens,
  lengthPenalty: 1,
  earlyStopping,
  noRepeatNgramSize: 3,
  decoderStartTokenId: 2,
  eosTokenId: EOS,
  padTokenId: 1,
  forcedBosTokenId: 0,
  forcedEosTokenId: EOS,
});

/** Item b's result run alone (a batch of one, its own limit). */
async function alone(scripts: Script[], b: number, p: GenerationParams, maxNewTokens: number) {
  const rec = newRecording();
  const out = await generate(scriptedBackend([scripts[b]], [b], rec), encoderOf(1), { ...p, maxNewTokens });
  return { sequence: out.sequences[0], steps: out.itemSteps[0], rows: rec.rows };
}

describe('batch items in generate (scripted decoder)', () => {
  // item 0 ends early on its own EOS, item 1 runs to its limit, item 2 ends on EOS later, item 3 has a small limit
  const scripts = [script(4), script(Infinity), script(9), script(Infinity)];
  const limits = [30, 12, 30, 5];

  for (const numBeams of [1, 3]) {
    for (const earlyStopping of [true, false]) {
      it(`mixed limits and ends: each item gives exactly its alone ids, log-probs and steps (${numBeams} beams, early stopping ${earlyStopping})`, async () => {
        const p = params(numBeams, 30, earlyStopping);
        const rec = newRecording();
        const done: [number, GeneratedSequence | null, number][] = [];
        const out = await generate(scriptedBackend(scripts, [0, 1, 2, 3], rec), encoderOf(4), p, {
          maxNewTokens: limits,
          onItemDone: (b, seq, steps) => done.push([b, seq, steps]),
        });
        for (let b = 0; b < 4; b++) {
          const a = await alone(scripts, b, p, limits[b]);
          assert.deepEqual(out.sequences[b], a.sequence, `item ${b}`);
          assert.equal(out.itemSteps[b], a.steps, `item ${b} steps`);
        }
        assert.equal(out.steps, Math.max(...out.itemSteps));
        // every item is reported once, in the order it finished, with the same sequence
        assert.deepEqual(done.map(([b]) => b).sort(), [0, 1, 2, 3]);
        for (const [b, seq, steps] of done) {
          assert.equal(seq, out.sequences[b]);
          assert.equal(steps, out.itemSteps[b]);
        }
        const finishOrder = done.map(([, , steps]) => steps);
        assert.deepEqual(
          finishOrder,
          [...finishOrder].sort((x, y) => x - y),
        );
        // a finished item's rows leave the batch: rows per call = live items × beams (one row per item on the first beam step)
        const liveAt = (call: number) => out.itemSteps.filter((s) => s > call).length;
        assert.deepEqual(
          rec.rows,
          rec.rows.map((_, call) => liveAt(call) * (call === 0 ? 1 : numBeams)),
        );
      });
    }
  }

  it('beam search drops a done item’s rows at once (3 beams: 6 rows, then 3)', async () => {
    const rec = newRecording();
    const out = await generate(scriptedBackend([script(3), script(Infinity)], [0, 1], rec), encoderOf(2), params(3, 10));
    const first = out.itemSteps[0];
    assert.ok(first < out.itemSteps[1], `item 0 ends first (${out.itemSteps})`);
    assert.deepEqual(rec.rows, [2, ...new Array<number>(first - 1).fill(6), ...new Array<number>(out.itemSteps[1] - first).fill(3)]);
    assert.ok(rec.rowItems.slice(first).every((items) => items.every((b) => b === 1)));
    const a = await alone([script(3), script(Infinity)], 1, params(3), 10);
    assert.deepEqual(out.sequences[1], a.sequence);
  });

  it('an early finisher is reported before the next decoder step runs', async () => {
    for (const numBeams of [1, 3]) {
      const rec = newRecording();
      await generate(scriptedBackend([script(Infinity), script(Infinity)], [0, 1], rec), encoderOf(2), params(numBeams, 20), {
        maxNewTokens: [20, 3],
        onItemDone: (b, _seq, steps) => rec.events.push(`done ${b} after ${steps}`),
      });
      assert.deepEqual(rec.events, [
        ...new Array<string>(3).fill('decode'),
        'done 1 after 3',
        ...new Array<string>(17).fill('decode'),
        'done 0 after 20',
      ]);
    }
  });

  for (const numBeams of [1, 3]) {
    it(`a stopped item leaves the batch before the next step and ends as null; the others are unchanged (${numBeams} beams)`, async () => {
      const rec = newRecording();
      const checked: number[] = [];
      const opts: GenerateOptions = {
        maxNewTokens: [15, 15, 15],
        itemStopped: (b) => {
          checked.push(b);
          return b === 1 && rec.rows.length >= 4;
        },
        onItemDone: (b, seq, steps) => rec.events.push(`done ${b} ${seq === null ? 'stopped' : 'ok'} after ${steps}`),
      };
      const scripts3 = [script(Infinity), script(Infinity), script(7)];
      const out = await generate(scriptedBackend(scripts3, [0, 1, 2], rec), encoderOf(3), params(numBeams), opts);
      assert.equal(out.sequences[1], null);
      assert.equal(out.itemSteps[1], 4);
      assert.equal(rec.events.slice(0, 5).join(','), 'decode,decode,decode,decode,done 1 stopped after 4');
      assert.ok(rec.rowItems.slice(4).every((items) => !items.includes(1)));
      for (const b of [0, 2]) assert.deepEqual(out.sequences[b], (await alone(scripts3, b, params(numBeams), 15)).sequence, `item ${b}`);
      // asked before every step, for live items only
      assert.ok(!checked.slice(checked.lastIndexOf(1) + 1).includes(1));
    });
  }

  it('the batch-wide shouldStop still throws GenerationStopped; items finished before keep their report', async () => {
    const rec = newRecording();
    const done: number[] = [];
    await assert.rejects(
      generate(scriptedBackend([script(Infinity), script(Infinity)], [0, 1], rec), encoderOf(2), params(3, 20), {
        maxNewTokens: [2, 20],
        shouldStop: () => rec.rows.length >= 5,
        onItemDone: (b) => done.push(b),
      }),
      (e: unknown) => e instanceof GenerationStopped && e.steps === 5,
    );
    assert.deepEqual(done, [0]);
  });

  it('rejects a per-item limit list of the wrong length or with a bad limit', async () => {
    const backend = scriptedBackend([script(3), script(3)], [0, 1], newRecording());
    assert.throws(() => generate(backend, encoderOf(2), params(1), { maxNewTokens: [3] }), RangeError);
    assert.throws(() => generate(backend, encoderOf(2), params(1), { maxNewTokens: [3, 0] }), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the pipeline on synthetic ONNX models.

/** A noisy image (the random model's output depends on it). */
function noise(width: number, height: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let s = seed * 2654435761;
  for (let i = 0; i < data.length; i++) {
    s = Math.imul(s ^ (s >>> 13), 1274126177) + i;
    data[i] = (s >>> 16) & 255;
  }
  return data;
}
const png = (width: number, height: number, seed: number) =>
  sharp(noise(width, height, seed), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();

interface CountingParts {
  parts: PipelineParts;
  /** Decoder calls so far. */
  calls: () => number;
  release: () => Promise<void>;
  /** Makes the next decoder calls fail. */
  breakDecoder: () => void;
}

async function pipelineFor(dir: string): Promise<CountingParts> {
  const config = readModelConfig(dir);
  const backend = await OrtBackend.open(dir, config.dims);
  let calls = 0;
  let broken = false;
  const counting = Object.create(backend) as OrtBackend;
  counting.decode = (input) => {
    calls += 1;
    if (broken) return Promise.reject(new Error('ORT failed'));
    return backend.decode(input);
  };
  const pre = readPreprocessorConfig(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')));
  const parts: PipelineParts = {
    backend: counting,
    tokenizer: FlorenceTokenizer.fromDir(dir),
    preprocess: preprocessOptionsFromConfig(pre),
    generation: config.generation,
    encoderMaxPositions: config.encoderMaxPositions,
  };
  return {
    parts,
    calls: () => calls,
    release: () => backend.release(),
    breakDecoder: () => {
      broken = true;
    },
  };
}

/** What must not change with batching. */
const answer = (r: RunResult) => ({
  task: r.task,
  tokenIds: r.tokenIds,
  text: r.text,
  result: r.result,
  imageSize: r.imageSize,
  promptTokens: r.promptTokens,
  generatedTokens: r.generatedTokens,
  steps: r.batch.steps,
});

function okResult(o: RunOutcome | undefined, what: string): RunResult {
  assert.ok(o?.ok, `${what}: ${o && !o.ok ? String(o.error) : 'no outcome'}`);
  return o.result;
}

async function aloneResult(parts: PipelineParts, req: RunRequest, numBeams: number, maxNewTokens: number): Promise<RunResult> {
  const [r] = await runBatch(parts, [req], { generation: { numBeams, maxNewTokens } });
  assert.equal(r.batch.requests, 1);
  assert.ok(!r.timings.shared);
  return r;
}

async function mixedRequests(): Promise<{ requests: RunRequest[]; limits: number[] }> {
  const a = await png(640, 480, 1);
  const b = await png(300, 500, 2);
  const c = { rgb: noise(200, 260, 3), size: { width: 200, height: 260 } };
  return {
    requests: [
      { image: a, task: '<OD>' },
      { image: b, task: '<CAPTION_TO_PHRASE_GROUNDING>', text: 'a green car parked in front of a yellow building' },
      { image: a, task: '<OPEN_VOCABULARY_DETECTION>', text: 'wheel' },
      { image: c, task: '<REGION_TO_CATEGORY>', region: { x1: 10, y1: 20, x2: 150, y2: 200 } },
      { image: b, task: '<MORE_DETAILED_CAPTION>' },
    ],
    limits: [9, 20, 4, 14, 1],
  };
}

describe('batch items in the pipeline (synthetic ONNX models)', function () {
  this.timeout(300_000);

  const models: [string, () => Promise<string>][] = [
    ['a random tiny model', randomTiny],
    [
      'a scripted tiny model',
      () =>
        tinyModel({
          name: 'tiny-batch-grounding',
          script: 'a car<loc_54><loc_330><loc_911><loc_780>a wheel<loc_0><loc_8><loc_998><loc_635>',
          seed: 11,
        }),
    ],
  ];
  for (const [name, dirOf] of models) {
    for (const numBeams of [1, 3]) {
      it(`batching changes no answer on ${name} (${numBeams === 1 ? 'greedy' : `${numBeams} beams`}): 5 requests, 3 images, 5 tasks, 5 limits`, async () => {
        const m = await pipelineFor(await dirOf());
        try {
          const { requests, limits } = await mixedRequests();
          const reported: [number, RunOutcome, number][] = [];
          const outcomes = await runBatchSettled(m.parts, requests, {
            generation: { numBeams },
            items: limits.map((maxNewTokens) => ({ maxNewTokens })),
            onOutcome: (i, o) => reported.push([i, o, m.calls()]),
          });
          assert.equal(reported.length, requests.length);
          for (const [i, o] of reported) assert.equal(o, outcomes[i]);
          const results = outcomes.map((o, i) => okResult(o, `request ${i}`));
          for (const [i, req] of requests.entries()) {
            const expected = await aloneResult(m.parts, req, numBeams, limits[i]);
            assert.deepEqual(answer(results[i]), answer(expected), `request ${i} (${req.task})`);
            assert.ok(results[i].generatedTokens <= limits[i]);
            assert.deepEqual(results[i].batch, { requests: 5, rows: 5 * numBeams, steps: expected.batch.steps });
            assert.equal(results[i].timings.shared, true);
          }
          // each outcome came right after its own last decoder step, not at the end of the batch
          for (const [i, , calls] of reported)
            assert.equal(calls, results[i].batch.steps, `request ${i} reported after ${calls} decoder calls`);
          // own timings: decoder up to its own last step, total up to its own result; shared stages identical
          const byDecoder = [...results].sort((x, y) => x.batch.steps - y.batch.steps);
          for (let k = 1; k < byDecoder.length; k++) assert.ok(byDecoder[k].timings.decoder >= byDecoder[k - 1].timings.decoder);
          for (const r of results) {
            assert.ok(r.timings.total >= r.timings.preprocess + r.timings.vision + r.timings.encoder + r.timings.decoder);
            assert.deepEqual(
              [r.timings.preprocess, r.timings.vision, r.timings.encoder],
              [results[0].timings.preprocess, results[0].timings.vision, results[0].timings.encoder],
            );
          }
        } finally {
          await m.release();
        }
      });
    }
  }

  for (const numBeams of [1, 3]) {
    it(`a stopped request ends with GenerationStopped before the next decoder step, the others complete unchanged (${numBeams} beams)`, async () => {
      const m = await pipelineFor(await randomTiny());
      try {
        const { requests } = await mixedRequests();
        const reqs = requests.slice(0, 3);
        const reported: [number, RunOutcome, number][] = [];
        const outcomes = await runBatchSettled(m.parts, reqs, {
          generation: { numBeams, maxNewTokens: 12 },
          items: [{}, { shouldStop: () => m.calls() >= 3 }, {}],
          onOutcome: (i, o) => reported.push([i, o, m.calls()]),
        });
        assert.equal(reported[0][0], 1, 'the stopped request is reported first');
        assert.equal(reported[0][2], 3, 'right after the step its stop was seen before');
        const stopped = outcomes[1];
        assert.ok(
          !stopped.ok && stopped.error instanceof GenerationStopped && stopped.error.steps === 3,
          String(!stopped.ok && stopped.error),
        );
        for (const i of [0, 2])
          assert.deepEqual(answer(okResult(outcomes[i], `request ${i}`)), answer(await aloneResult(m.parts, reqs[i], numBeams, 12)));
      } finally {
        await m.release();
      }
    });
  }

  it('a request stopped before the batch starts ends with GenerationStopped(0) and costs no encoding', async () => {
    const m = await pipelineFor(await carTiny());
    try {
      const image = await png(320, 240, 4);
      const outcomes = await runBatchSettled(
        m.parts,
        [
          { image, task: '<OD>' },
          { image: await png(100, 100, 5), task: '<OD>' },
        ],
        {
          items: [{}, { shouldStop: () => true }],
        },
      );
      const stopped = outcomes[1];
      assert.ok(!stopped.ok && stopped.error instanceof GenerationStopped && stopped.error.steps === 0);
      assert.equal(okResult(outcomes[0], 'request 0').batch.requests, 1);
    } finally {
      await m.release();
    }
  });

  it('the batch-wide shouldStop ends every unfinished request with GenerationStopped and settles', async () => {
    const m = await pipelineFor(await randomTiny());
    try {
      const { requests } = await mixedRequests();
      const outcomes = await runBatchSettled(m.parts, requests.slice(0, 2), {
        generation: { numBeams: 3 },
        items: [{ maxNewTokens: 2 }, { maxNewTokens: 20 }],
        shouldStop: () => m.calls() >= 4,
      });
      assert.equal(okResult(outcomes[0], 'request 0').batch.steps, 2);
      const stopped = outcomes[1];
      assert.ok(!stopped.ok && stopped.error instanceof GenerationStopped && stopped.error.steps === 4);
    } finally {
      await m.release();
    }
  });

  it('an early finisher is answered before a long request finishes', async () => {
    const m = await pipelineFor(await randomTiny());
    try {
      const { requests } = await mixedRequests();
      const order: [number, number][] = [];
      const outcomes = await runBatchSettled(m.parts, requests.slice(0, 2), {
        generation: { numBeams: 3 },
        items: [{ maxNewTokens: 30 }, { maxNewTokens: 3 }],
        onOutcome: (i) => order.push([i, m.calls()]),
      });
      assert.deepEqual(order, [
        [1, 3],
        [0, 30],
      ]);
      const [long, short] = outcomes.map((o, i) => okResult(o, `request ${i}`));
      assert.ok(short.timings.decoder < long.timings.decoder && short.timings.total < long.timings.total);
      assert.deepEqual([short.batch.steps, long.batch.steps], [3, 30]);
    } finally {
      await m.release();
    }
  });

  it('a bad image, a bad prompt, a too-long prompt and a bad limit fail only their own request, reported before any generation', async () => {
    const m = await pipelineFor(await carTiny());
    try {
      const good = await png(640, 480, 6);
      const requests: RunRequest[] = [
        { image: good, task: '<OD>' },
        { image: new Uint8Array([1, 2, 3, 4]), task: '<OD>' },
        { image: good, task: '<OD>', region: { x1: 1, y1: 1, x2: 5, y2: 5 } },
        { image: good, task: '<OPEN_VOCABULARY_DETECTION>', text: 'wheel '.repeat(1100) },
        { image: good, task: '<CAPTION>' },
        { image: await png(100, 80, 7), task: '<OD>' },
      ];
      const reported: [number, number][] = [];
      const outcomes = await runBatchSettled(m.parts, requests, {
        items: [{}, {}, {}, {}, { maxNewTokens: 0 }, {}],
        onOutcome: (i) => reported.push([i, m.calls()]),
      });
      const error = (i: number) => {
        const o = outcomes[i];
        assert.ok(!o.ok, `request ${i} should fail`);
        return o.error;
      };
      const [image, prompt, tooLong, limit] = [1, 2, 3, 4].map(error);
      assert.ok(image instanceof ImageDecodeError);
      assert.ok(prompt instanceof PromptError && prompt.field === 'region');
      assert.ok(tooLong instanceof PromptError && /encoder holds/.test(tooLong.message), String(tooLong));
      assert.ok(limit instanceof GenerationOptionError && limit.field === 'maxNewTokens');
      for (const [i, calls] of reported)
        if ([1, 2, 3, 4].includes(i)) assert.equal(calls, 0, `request ${i} reported before any decoder step`);
      const ok = [0, 5].map((i) => okResult(outcomes[i], `request ${i}`));
      assert.deepEqual((ok[0].result as { labels: string[] }).labels, ['car']);
      assert.deepEqual(
        ok.map((r) => r.batch.requests),
        [2, 2],
      );
      for (const [k, i] of [0, 5].entries()) assert.deepEqual(answer(ok[k]), answer(await aloneResult(m.parts, requests[i], 3, 1024)));
      // runBatch still fails the batch on the first bad request
      await assert.rejects(runBatch(m.parts, requests), ImageDecodeError);
      await assert.rejects(runBatch(m.parts, [requests[0], requests[2]]), PromptError);
    } finally {
      await m.release();
    }
  });

  it('a backend failure rejects the whole batch', async () => {
    const m = await pipelineFor(await carTiny());
    try {
      m.breakDecoder();
      const image = await png(64, 64, 8);
      await assert.rejects(
        runBatchSettled(m.parts, [
          { image, task: '<OD>' },
          { image, task: '<CAPTION>' },
        ]),
        /ORT failed/,
      );
    } finally {
      await m.release();
    }
  });

  it('Florence2.runBatchSettled: per-item limits and outcomes, same answers as Florence2.run', async () => {
    const model = await Florence2.load(await carTiny());
    try {
      const image = await png(640, 480, 9);
      const reqs: RunRequest[] = [
        { image, task: '<OD>' },
        { image, task: '<OPEN_VOCABULARY_DETECTION>', text: 'car' },
      ];
      const outcomes = await model.runBatchSettled(reqs, { generation: { numBeams: 3 }, items: [{ maxNewTokens: 3 }, {}] });
      const [short, full] = outcomes.map((o, i) => okResult(o, `request ${i}`));
      assert.equal(short.generatedTokens, 3);
      assert.deepEqual(answer(short), answer(await model.run(reqs[0], { generation: { numBeams: 3, maxNewTokens: 3 } })));
      assert.deepEqual(answer(full), answer(await model.run(reqs[1], { generation: { numBeams: 3 } })));
      assert.deepEqual(full.batch, { requests: 2, rows: 6, steps: full.batch.steps });
    } finally {
      await model.release();
    }
  });
});
