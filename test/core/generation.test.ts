/**
 * The inference core against independent references on synthetic models: KV-cached beam search vs
 * the plain full-recompute reference, greedy vs transformers.js, and end-to-end parsed results of
 * scripted models.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { type Florence2Processor, type RawImage } from '@huggingface/transformers';
import { loadTjsModel, loadTjsProcessor, testImage } from '../helpers/tjs';
import { Florence2, GenerationStopped, ModelLoadError } from '../../src/index';
import { OrtBackend } from '../../src/runtime/ort-backend';
import { readModelConfig } from '../../src/florence/model-config';
import { encodeInputs, runBatch } from '../../src/florence/pipeline';
import { FlorenceTokenizer } from '../../src/florence/tokenizer';
import { preprocessOptionsFromConfig, readPreprocessorConfig } from '../../src/florence/preprocess';
import { generate } from '../../src/florence/generation/loop';
import { carTiny, randomTiny, tinyModel } from '../helpers/synth-models';
import { beamGenerate, encodeInputs as refEncode, loadReferenceModel } from '../helpers/reference-generation';

const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 90, g: 140, b: 200 } } })
    .png()
    .toBuffer();

function close(actual: unknown, expected: unknown, tol = 1e-3, path = ''): void {
  if (Array.isArray(expected)) {
    assert.ok(
      Array.isArray(actual) && actual.length === expected.length,
      `${path}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`,
    );
    expected.forEach((e, i) => close((actual as unknown[])[i], e, tol, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object', `${path}: ${JSON.stringify(actual)}`);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), path);
    for (const [k, v] of Object.entries(expected)) close((actual as Record<string, unknown>)[k], v, tol, `${path}.${k}`);
  } else if (typeof expected === 'number') {
    assert.ok(typeof actual === 'number' && Math.abs(actual - expected) <= tol, `${path}: ${String(actual)} vs ${expected}`);
  } else assert.deepEqual(actual, expected, path);
}

const GENERATION = (numBeams: number, earlyStopping: boolean, maxNewTokens: number) => {
  return {
    numBeams,
    earlyStopping,
    maxNewTokens,
    lengthPenalty: 1,
    noRepeatNgramSize: 3,
    decoderStartTokenId: 2,
    eosTokenId: 2,
    padTokenId: 1,
    forcedBosTokenId: 0,
    forcedEosTokenId: 2,
  };
};

describe('inference core', function () {
  describe('on a random tiny model', () => {
    let dir: string;
    let backend: OrtBackend;
    let processor: Florence2Processor;
    before(async () => {
      dir = await randomTiny();
      backend = await OrtBackend.open(dir, readModelConfig(dir).dims);
      processor = await loadTjsProcessor(dir);
    });
    after(async () => backend.release());

    async function inputs(images: RawImage[], tasks: string[]) {
      const x = await processor(images, processor.construct_prompts(tasks), { padding: true });
      const px = x.pixel_values as { data: Float32Array; dims: number[] };
      const ids = x.input_ids as { data: BigInt64Array; dims: number[]; tolist(): bigint[][] };
      const mask = x.attention_mask as { data: BigInt64Array; tolist(): bigint[][] };
      return { x, px, ids, mask };
    }

    it('KV-cached beam search equals the full-recompute reference for 1-4 beams, early stopping on and off, batch of 2', async () => {
      const ref = await loadReferenceModel(dir);
      try {
        const { px, ids, mask } = await inputs([testImage(640, 480, 1), testImage(300, 500, 2)], ['<OD>', '<CAPTION>']);
        const rows = ids.tolist().map((r, b) => r.map(Number).filter((_, k) => mask.tolist()[b][k] === 1n));
        const refEnc = await refEncode(ref, new ort.Tensor('float32', px.data, px.dims), rows);
        const { states } = await encodeInputs(backend, px.data, px.dims as [number, number, number, number], ids.data, mask.data, 1024);
        for (const numBeams of [1, 2, 3, 4]) {
          for (const earlyStopping of [true, false]) {
            const expected = await beamGenerate(ref, refEnc, { maxNewTokens: 12, numBeams, earlyStopping });
            const ours = await generate(backend, states, GENERATION(numBeams, earlyStopping, 12));
            assert.deepEqual(
              ours.sequences.map((s) => s?.ids),
              expected,
              `num_beams ${numBeams}, early_stopping ${earlyStopping}`,
            );
          }
        }
      } finally {
        await ref.release();
      }
    });

    it('greedy ids equal transformers.js token for token (several tasks and images, batch sizes 1 and 3)', async () => {
      const model = await loadTjsModel(dir);
      const cases: [RawImage[], string[]][] = [
        [[testImage(640, 480, 1)], ['<OD>']],
        [[testImage(320, 200, 3)], ['<DENSE_REGION_CAPTION>']],
        [[testImage(500, 500, 4)], ['<CAPTION_TO_PHRASE_GROUNDING>a green car']],
        [
          [testImage(640, 480, 5), testImage(200, 300, 6), testImage(400, 400, 7)],
          ['<OCR>', '<MORE_DETAILED_CAPTION>', '<OPEN_VOCABULARY_DETECTION>wheel'],
        ],
      ];
      for (const [images, tasks] of cases) {
        const { x, px, ids, mask } = await inputs(images, tasks);
        const tjs = ((await model.generate({ ...x, max_new_tokens: 14, num_beams: 1, do_sample: false })) as { tolist(): bigint[][] })
          .tolist()
          .map((r) => r.map(Number));
        const { states } = await encodeInputs(backend, px.data, px.dims as [number, number, number, number], ids.data, mask.data, 1024);
        const ours = await generate(backend, states, GENERATION(1, true, 14));
        // transformers.js keeps generating for finished rows of a batch; compare up to each row's EOS
        const cut = (r: number[]) => (r.indexOf(2, 1) < 0 ? r : r.slice(0, r.indexOf(2, 1) + 1));
        assert.deepEqual(
          ours.sequences.map((s) => s?.ids),
          tjs.map(cut),
          tasks.join(' '),
        );
      }
    });

    it('stops between decoder steps when asked, and the backend serves the next run', async () => {
      const { px, ids, mask } = await inputs([testImage(640, 480, 1)], ['<OD>']);
      const { states } = await encodeInputs(backend, px.data, px.dims as [number, number, number, number], ids.data, mask.data, 1024);
      let checks = 0;
      await assert.rejects(
        generate(backend, states, GENERATION(3, true, 50), { shouldStop: () => ++checks > 4 }),
        (e: unknown) => e instanceof GenerationStopped && e.steps === 4,
      );
      const next = await generate(backend, states, GENERATION(1, true, 5));
      assert.equal(next.sequences[0]?.ids.length, 6);
    });
  });

  describe('Florence2.run on scripted models', () => {
    const cases = [
      {
        name: 'OD',
        script: 'car<loc_53><loc_333><loc_933><loc_774>',
        task: '<OD>' as const,
        size: [640, 480],
        expected: { bboxes: [[34.24, 160.08, 597.44, 371.76]], labels: ['car'] },
      },
      {
        name: 'OCR with regions',
        script:
          'CUDA<loc_414><loc_100><loc_932><loc_100><loc_932><loc_229><loc_414><loc_229>FOR ENGINEERS<loc_359><loc_241><loc_932><loc_241><loc_932><loc_298><loc_359><loc_298>',
        task: '<OCR_WITH_REGION>' as const,
        size: [403, 500],
        expected: {
          quad_boxes: [
            [167.0435, 50.25, 375.7975, 50.25, 375.7975, 114.75, 167.0435, 114.75],
            [144.8785, 120.75, 375.7975, 120.75, 375.7975, 149.25, 144.8785, 149.25],
          ],
          labels: ['CUDA', 'FOR ENGINEERS'],
        },
      },
      {
        name: 'phrase grounding',
        script: 'A green car<loc_54><loc_330><loc_911><loc_780>a yellow building<loc_0><loc_8><loc_998><loc_635>',
        task: '<CAPTION_TO_PHRASE_GROUNDING>' as const,
        text: 'A green car parked in front of a yellow building.',
        size: [640, 480],
        expected: {
          bboxes: [
            [34.88, 158.64, 583.36, 374.64],
            [0.32, 4.08, 639.04, 305.04],
          ],
          labels: ['A green car', 'a yellow building'],
        },
      },
      {
        name: 'referring segmentation',
        script: '<loc_279><loc_379><loc_282><loc_379><loc_290><loc_372><loc_293><loc_372>',
        task: '<REFERRING_EXPRESSION_SEGMENTATION>' as const,
        text: 'a car',
        size: [640, 480],
        expected: { polygons: [[[178.88, 182.16, 180.8, 182.16, 185.92, 178.8, 187.84, 178.8]]], labels: [''] },
      },
    ];
    for (const c of cases) {
      it(`${c.name}: the parsed result is the script's, scaled to the image, with scores near 1 (greedy and 3 beams)`, async () => {
        const dir = await tinyModel({ name: `tiny-${c.name.replace(/ /g, '-')}`, script: c.script, seed: 5 });
        const model = await Florence2.load(dir);
        try {
          for (const numBeams of [1, 3]) {
            const r = await model.run(
              { image: await png(c.size[0], c.size[1]), task: c.task, text: c.text },
              { generation: { numBeams, maxNewTokens: 64 } },
            );
            const { scores, ...parsed } = r.result as unknown as Record<string, unknown>;
            close(parsed, c.expected, 1e-3, c.name);
            assert.equal((scores as number[]).length, c.expected.labels.length);
            for (const s of scores as number[]) assert.ok(s > 0.99 && s <= 1, `score ${s}`);
            assert.deepEqual(r.imageSize, { width: c.size[0], height: c.size[1] });
            assert.ok(r.timings.total >= r.timings.decoder && r.timings.decoder > 0);
          }
        } finally {
          await model.release();
        }
      });
    }

    it('one image shared by several requests (one prompt per class) is preprocessed and encoded once', async () => {
      const dir = await carTiny();
      const config = readModelConfig(dir);
      const backend = await OrtBackend.open(dir, config.dims);
      const visionBatches: number[] = [];
      const counting = Object.create(backend) as OrtBackend;
      counting.encodeImages = (pixels, batch, h, w) => {
        visionBatches.push(batch);
        return backend.encodeImages(pixels, batch, h, w);
      };
      try {
        const pre = readPreprocessorConfig(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')));
        const parts = {
          backend: counting,
          tokenizer: FlorenceTokenizer.fromDir(dir),
          preprocess: preprocessOptionsFromConfig(pre),
          generation: config.generation,
          encoderMaxPositions: config.encoderMaxPositions,
        };
        const shared = await png(640, 480);
        const other = await png(320, 960);
        const results = await runBatch(parts, [
          { image: shared, task: '<OPEN_VOCABULARY_DETECTION>', text: 'car' },
          { image: other, task: '<OD>' },
          { image: shared, task: '<OPEN_VOCABULARY_DETECTION>', text: 'a wheel' },
        ]);
        assert.deepEqual(visionBatches, [2]);
        assert.deepEqual(
          results.map((r) => r.imageSize),
          [
            { width: 640, height: 480 },
            { width: 320, height: 960 },
            { width: 640, height: 480 },
          ],
        );
        assert.deepEqual(
          results.map((r) => r.promptTokens),
          [9, 13, 10],
        );
        close((results[1].result as { bboxes: number[][] }).bboxes, [[17.12, 320.16, 298.72, 743.52]]);
        close((results[2].result as { bboxes: number[][] }).bboxes, [[34.24, 160.08, 597.44, 371.76]]);
      } finally {
        await backend.release();
      }
    });

    it('runs a batch of images of different sizes in one call, each scaled to its own size', async () => {
      const model = await Florence2.load(await carTiny());
      try {
        const [a, b] = await model.runBatch([
          { image: await png(640, 480), task: '<OD>' },
          { image: await png(320, 960), task: '<OD>' },
        ]);
        close((a.result as { bboxes: number[][] }).bboxes, [[34.24, 160.08, 597.44, 371.76]]);
        close((b.result as { bboxes: number[][] }).bboxes, [[17.12, 320.16, 298.72, 743.52]]);
      } finally {
        await model.release();
      }
    });
  });

  describe('loading', () => {
    it('names the missing file when a folder lacks a graph', async () => {
      const src = await carTiny();
      const tmp = mkdtempSync(join(tmpdir(), 'florence-load-'));
      try {
        cpSync(src, tmp, { recursive: true });
        rmSync(join(tmp, 'onnx', 'encoder_model.onnx'));
        await assert.rejects(Florence2.load(tmp), (e: Error) => e instanceof ModelLoadError && e.message.includes('encoder_model.onnx'));
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it('names the file and the missing input when a graph is not the expected one', async () => {
      const src = await carTiny();
      const tmp = mkdtempSync(join(tmpdir(), 'florence-load-'));
      try {
        cpSync(src, tmp, { recursive: true });
        copyFileSync(join(tmp, 'onnx', 'embed_tokens.onnx'), join(tmp, 'onnx', 'vision_encoder.onnx'));
        await assert.rejects(
          Florence2.load(tmp),
          (e: Error) =>
            e instanceof ModelLoadError &&
            /vision_encoder\.onnx is not a Florence-2 vision_encoder graph: missing input "pixel_values"/.test(e.message),
        );
        assert.ok(readdirSync(tmp).includes('config.json'));
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
});
