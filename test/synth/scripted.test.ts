/** Scripted models emit their script under greedy decoding and beam search, whatever the input. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as ort from 'onnxruntime-node';
import { CAR_SCRIPT, carTiny, tinyModel } from '../helpers/synth-models';
import { type ReferenceModel, beamGenerate, encodeInputs, greedyGenerate, loadReferenceModel } from '../helpers/reference-generation';
import { tokenizeScript } from '../../tools/synth/build';
import { ScriptError, validateScript } from '../../tools/synth/script';
import { SIZES } from '../../tools/synth/sizes';

const OD_PROMPT = [0, 574, 22486, 5, 8720, 19, 4120, 766, 11, 5, 2274, 4, 2];
const CAPTION_PROMPT = [0, 2264, 473, 5, 2274, 6190, 116, 2];
const CAR_IDS = [5901, 50322, 50602, 51202, 51043];

function randomPixels(batch: number, seed: number, side = 768): ort.Tensor {
  let s = seed;
  const data = Float32Array.from({ length: batch * 3 * side * side }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s / 2 ** 32) * 4.5 - 2.1;
  });
  return new ort.Tensor('float32', data, [batch, 3, side, side]);
}

describe('synthetic model: scripted weights', function () {
  it('tokenizes the script with the real tokenizer', async () => {
    assert.deepEqual(await tokenizeScript(CAR_SCRIPT), CAR_IDS);
  });

  describe('car script', () => {
    let m: ReferenceModel;
    before(async () => {
      m = await loadReferenceModel(await carTiny());
    });
    after(async () => m.release());

    const expected = [2, 0, ...CAR_IDS, 2];

    it('greedy decoding emits the script for different images and prompts (batch of 2)', async () => {
      for (const seed of [1, 2]) {
        const enc = await encodeInputs(m, randomPixels(2, seed), [OD_PROMPT, CAPTION_PROMPT]);
        assert.deepEqual(await greedyGenerate(m, enc, { maxNewTokens: 40 }), [expected, expected]);
      }
    });

    for (const numBeams of [1, 2, 3, 4]) {
      for (const earlyStopping of [true, false]) {
        it(`beam search (num_beams ${numBeams}, early_stopping ${earlyStopping}, no_repeat_ngram 3) emits the script`, async () => {
          const enc = await encodeInputs(m, randomPixels(2, 7 + numBeams), [CAPTION_PROMPT, OD_PROMPT]);
          assert.deepEqual(await beamGenerate(m, enc, { maxNewTokens: 40, numBeams, earlyStopping }), [expected, expected]);
        });
      }
    }
  });

  it('a long OCR-with-regions script (recurring tokens, 90+ ids) decodes exactly under greedy and beams 3', async function () {
    const text =
      'CUDA<loc_414><loc_100><loc_932><loc_100><loc_932><loc_229><loc_414><loc_229>FOR ENGINEERS<loc_359><loc_241><loc_932><loc_241><loc_932><loc_298><loc_359><loc_298>' +
      'An Introduction to High-Performance<loc_287><loc_330><loc_934><loc_332><loc_934><loc_368><loc_287><loc_366>Parallel Computing<loc_286><loc_376><loc_933><loc_376><loc_933><loc_412><loc_286><loc_412>' +
      'DUANE STORTI<loc_535><loc_859><loc_932><loc_859><loc_932><loc_893><loc_535><loc_893>METE YURTOGLU<loc_535><loc_898><loc_932><loc_898><loc_932><loc_933><loc_535><loc_933>' +
      'Second edition with new chapters on streams and cooperative groups<loc_100><loc_950><loc_900><loc_950><loc_900><loc_990><loc_100><loc_990>';
    const ids = await tokenizeScript(text);
    assert.ok(ids.length > 90, `script has ${ids.length} tokens`);
    const m = await loadReferenceModel(await tinyModel({ name: 'tiny-ocr', script: text, seed: 11 }));
    try {
      const enc = await encodeInputs(m, randomPixels(1, 5), [OD_PROMPT]);
      const expected = [2, 0, ...ids, 2];
      assert.deepEqual(await greedyGenerate(m, enc, { maxNewTokens: 200 }), [expected]);
      assert.deepEqual(await beamGenerate(m, enc, { maxNewTokens: 200, numBeams: 3, earlyStopping: true }), [expected]);
    } finally {
      await m.release();
    }
  });

  describe('script validation', () => {
    const tiny = SIZES.tiny.text;
    it('rejects a script that repeats a token trigram (no_repeat_ngram_size 3 forbids it)', () => {
      assert.throws(
        () => validateScript([5901, 6, 7, 5901, 6, 7], tiny),
        (e: Error) => e instanceof ScriptError && /repeats the token trigram \[5901,6,7\]/.test(e.message),
      );
    });
    it('rejects special tokens inside the script', () => {
      assert.throws(() => validateScript([5901, 2, 7], tiny), /special id 2/);
      assert.throws(() => validateScript([0], tiny), /special id 0/);
    });
    it('rejects ids outside the vocabulary', () => {
      assert.throws(() => validateScript([51289], tiny), /not a vocabulary id/);
    });
    it('rejects a script longer than the size can hold', () => {
      const long = Array.from({ length: 300 }, (_, i) => 1000 + i);
      assert.throws(() => validateScript(long, tiny), /holds at most 254/);
    });
  });

  describe('CLI', () => {
    const cli = resolve(__dirname, '../../tools/synth/cli.ts');
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', env: { ...process.env } });
    let tmp: string;
    before(() => {
      tmp = mkdtempSync(join(tmpdir(), 'synth-cli-'));
    });
    after(() => rmSync(tmp, { recursive: true, force: true }));

    it('builds a scripted tiny folder and prints the ids the decoder emits', () => {
      const r = run(['--size', 'tiny', '--script', CAR_SCRIPT, '--out', join(tmp, 'car')]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /decoder emits ids \[2,0,5901,50322,50602,51202,51043,2\]/);
      assert.ok(existsSync(join(tmp, 'car', 'onnx', 'decoder_model_merged.onnx')));
    });
    it('refuses to overwrite a folder without --force, and reports all argument errors with exit code 2', () => {
      const again = run(['--size', 'tiny', '--out', join(tmp, 'car')]);
      assert.equal(again.status, 2);
      assert.match(again.stderr, /exists and is not empty/);
      const bad = run(['--size', 'huge', '--seed', 'x', '--dtype', 'int3']);
      assert.equal(bad.status, 2);
      for (const part of ['--size must be', '--out DIR is required', '--seed must be', '--dtype takes'])
        assert.ok(bad.stderr.includes(part), `${part} in ${bad.stderr}`);
    });
    it('rejects an impossible script with a clear message and leaves no folder behind', () => {
      const r = run(['--size', 'tiny', '--script-ids', '5901,6,7,5901,6,7', '--out', join(tmp, 'bad')]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /repeats the token trigram/);
      assert.ok(!existsSync(join(tmp, 'bad')));
    });
  });
});
