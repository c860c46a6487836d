/**
 * An independent consumer loads our folders: transformers.js (dev dependency, offline, local path)
 * runs its own Florence-2 processor and generation on them. Its token ids must equal the script on
 * scripted models, and equal the plain reference generation on random models.
 * (transformers.js decodes greedily even when asked for beams, so it is compared greedy to greedy.)
 */
import { strict as assert } from 'node:assert';
import * as ort from 'onnxruntime-node';
import { type RawImage } from '@huggingface/transformers';
import { loadTjsModel, loadTjsProcessor, testImage } from '../helpers/tjs';
import { CAR_SCRIPT, carTiny, randomTiny } from '../helpers/synth-models';
import { encodeInputs, greedyGenerate, loadReferenceModel } from '../helpers/reference-generation';
import { tokenizeScript } from '../../tools/synth/build';

async function loadTjs(dir: string) {
  const model = await loadTjsModel(dir);
  const processor = await loadTjsProcessor(dir);
  return { model, processor };
}

type Tjs = Awaited<ReturnType<typeof loadTjs>>;

async function tjsGenerate({ model, processor }: Tjs, images: RawImage[], prompts: string[], maxNewTokens: number) {
  const inputs = await processor(images, prompts, { padding: true });
  const out = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, num_beams: 1, do_sample: false });
  return { inputs, ids: (out as { tolist(): bigint[][] }).tolist().map((row) => row.map(Number)) };
}

/** A transformers.js row up to and including its first EOS after the start token (it does not pad finished rows). */
const untilEos = (row: number[]) => {
  const end = row.indexOf(2, 1);
  return end < 0 ? row : row.slice(0, end + 1);
};

describe('synthetic model: transformers.js as an independent consumer', function () {
  describe('scripted model', () => {
    let tjs: Tjs;
    let expected: number[];
    before(async () => {
      tjs = await loadTjs(await carTiny());
      expected = [2, 0, ...(await tokenizeScript(CAR_SCRIPT)), 2];
    });

    for (const task of [
      '<OD>',
      '<CAPTION>',
      '<OCR_WITH_REGION>',
      '<CAPTION_TO_PHRASE_GROUNDING>A green car parked in front of a yellow building.',
    ]) {
      it(`generates the script for ${task.slice(0, 40)} on two images of different sizes`, async () => {
        const prompts = tjs.processor.construct_prompts(task);
        for (const image of [testImage(640, 480, 1), testImage(300, 500, 2)]) {
          const { ids } = await tjsGenerate(tjs, [image], prompts, 40);
          assert.deepEqual(ids, [expected]);
        }
      });
    }

    it('generates the script for a batch of two images, and its post-processing finds the car box', async () => {
      const images = [testImage(640, 480, 3), testImage(403, 500, 4)];
      const { ids } = await tjsGenerate(tjs, images, tjs.processor.construct_prompts(['<OD>', '<OD>']), 40);
      assert.deepEqual(ids.map(untilEos), [expected, expected]);
      const text = tjs.processor.batch_decode([ids[0]], { skip_special_tokens: false })[0];
      assert.equal(text, `</s><s>${CAR_SCRIPT}</s>`);
      const parsed = tjs.processor.post_process_generation(text, '<OD>', [640, 480]) as {
        '<OD>': { labels: string[]; bboxes: number[][] };
      };
      assert.deepEqual(parsed['<OD>'].labels, ['car']);
      const box = parsed['<OD>'].bboxes[0];
      [34.24, 160.08, 597.44, 371.76].forEach((v, i) => assert.ok(Math.abs(box[i] - v) < 1e-6, `${box}`));
    });
  });

  describe('random model', () => {
    let tjs: Tjs;
    let dir: string;
    before(async () => {
      dir = await randomTiny();
      tjs = await loadTjs(dir);
    });

    it('greedy ids equal the plain reference generation, several tasks and images', async () => {
      const ref = await loadReferenceModel(dir);
      try {
        const seen = new Set<string>();
        for (const task of ['<OD>', '<CAPTION>', '<OPEN_VOCABULARY_DETECTION>wheel']) {
          for (const image of [testImage(640, 480, 1), testImage(200, 320, 5)]) {
            const { inputs, ids } = await tjsGenerate(tjs, [image], tjs.processor.construct_prompts(task), 16);
            const prompt = (inputs.input_ids as { tolist(): bigint[][] }).tolist().map((r) => r.map(Number));
            const pixels = inputs.pixel_values as { data: Float32Array; dims: number[] };
            const enc = await encodeInputs(ref, new ort.Tensor('float32', pixels.data, pixels.dims), prompt);
            const ours = await greedyGenerate(ref, enc, { maxNewTokens: 16 });
            assert.deepEqual(ids, ours, `${task} ${image.width}x${image.height}`);
            seen.add(JSON.stringify(ids));
          }
        }
        assert.ok(seen.size >= 5, `outputs should depend on task and image; got ${seen.size} distinct of 6`);
      } finally {
        await ref.release();
      }
    });

    it('batched greedy ids (two images, two prompts of different lengths) equal the reference', async () => {
      const ref = await loadReferenceModel(dir);
      try {
        const prompts = tjs.processor.construct_prompts(['<MORE_DETAILED_CAPTION>', '<OCR>']);
        const { inputs, ids } = await tjsGenerate(tjs, [testImage(640, 480, 7), testImage(500, 500, 8)], prompts, 12);
        const promptIds = (inputs.input_ids as { tolist(): bigint[][] }).tolist().map((r) => r.map(Number));
        const mask = (inputs.attention_mask as { tolist(): bigint[][] }).tolist().map((r) => r.map(Number));
        const unpadded = promptIds.map((r, i) => r.filter((_, k) => mask[i][k] === 1));
        assert.notEqual(unpadded[0].length, unpadded[1].length);
        const pixels = inputs.pixel_values as { data: Float32Array; dims: number[] };
        const enc = await encodeInputs(ref, new ort.Tensor('float32', pixels.data, pixels.dims), unpadded);
        const ours = await greedyGenerate(ref, enc, { maxNewTokens: 12 });
        assert.deepEqual(ids.map(untilEos), ours);
      } finally {
        await ref.release();
      }
    });
  });
});
