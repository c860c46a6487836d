/**
 * The synthetic graphs carry the real export's I/O contract (contract §5.2, §5.3) and behave like
 * it: zero-length past on the first step, empty cross-attention presents on cached steps, cached
 * decoding equal to full recomputation.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { randomTiny } from '../helpers/synth-models';
import { buildModel } from '../../tools/synth/build';
import { SIZES, VOCAB_SIZE } from '../../tools/synth/sizes';

const c = SIZES.tiny.text;
const D = c.dModel;
const H = c.decoderHeads;
const L = c.decoderLayers;
const Dh = D / H;

type Meta = { name: string; type: string; shape: (string | number)[] };
const io = (name: string, type: string, shape: (string | number)[]): Meta => ({ name, type, shape });

function kvNames(prefix: 'past_key_values' | 'present'): string[] {
  const names: string[] = [];
  for (let i = 0; i < L; i++)
    for (const part of ['decoder', 'encoder']) for (const kv of ['key', 'value']) names.push(`${prefix}.${i}.${part}.${kv}`);
  return names;
}

/** The contract table (§5.2), with tiny's D, H and Dh. */
const EXPECTED: Record<string, { inputs: Meta[]; outputs: Meta[] }> = {
  vision_encoder: {
    inputs: [io('pixel_values', 'float32', ['batch_size', 3, 'height', 'width'])],
    outputs: [io('image_features', 'float32', ['batch_size', 'floor(height/32)*floor(width/32)+1', D])],
  },
  embed_tokens: {
    inputs: [io('input_ids', 'int64', ['batch_size', 'sequence_length'])],
    outputs: [io('inputs_embeds', 'float32', ['batch_size', 'sequence_length', D])],
  },
  encoder_model: {
    inputs: [
      io('attention_mask', 'int64', ['batch_size', 'encoder_sequence_length']),
      io('inputs_embeds', 'float32', ['batch_size', 'encoder_sequence_length', D]),
    ],
    outputs: [io('last_hidden_state', 'float32', ['batch_size', 'encoder_sequence_length', D])],
  },
  decoder_model: {
    inputs: [
      io('encoder_attention_mask', 'int64', ['batch_size', 'encoder_sequence_length']),
      io('encoder_hidden_states', 'float32', ['batch_size', 'encoder_sequence_length', D]),
      io('inputs_embeds', 'float32', ['batch_size', 'decoder_sequence_length', D]),
    ],
    outputs: [
      io('logits', 'float32', ['batch_size', 'decoder_sequence_length', VOCAB_SIZE]),
      ...kvNames('present').map((n) =>
        io(n, 'float32', ['batch_size', H, n.includes('.decoder.') ? 'decoder_sequence_length' : 'encoder_sequence_length', Dh]),
      ),
    ],
  },
  decoder_model_merged: {
    inputs: [
      io('encoder_attention_mask', 'int64', ['batch_size', 'encoder_sequence_length']),
      io('encoder_hidden_states', 'float32', ['batch_size', 'encoder_sequence_length', D]),
      io('inputs_embeds', 'float32', ['batch_size', 'decoder_sequence_length', D]),
      ...kvNames('past_key_values').map((n) =>
        io(n, 'float32', ['batch_size', H, n.includes('.decoder.') ? 'past_decoder_sequence_length' : 'encoder_sequence_length_out', Dh]),
      ),
      io('use_cache_branch', 'bool', [1]),
    ],
    outputs: [
      io('logits', 'float32', ['batch_size', 'decoder_sequence_length', VOCAB_SIZE]),
      ...kvNames('present').map((n) =>
        io(n, 'float32', [
          'batch_size',
          H,
          n.includes('.decoder.') ? 'past_decoder_sequence_length + 1' : 'encoder_sequence_length_out',
          Dh,
        ]),
      ),
    ],
  },
};

const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1 };
const strip = (m: readonly ort.InferenceSession.ValueMetadata[]): Meta[] =>
  m.map((x) => ({ name: x.name, type: x.isTensor ? x.type : 'non-tensor', shape: x.isTensor ? [...x.shape] : [] }));

const f32 = (data: Float32Array | number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(data), dims);
const i64 = (data: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(data.map(BigInt)), dims);
const flag = (v: boolean) => new ort.Tensor('bool', Uint8Array.of(v ? 1 : 0), [1]);

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('synthetic model: graph I/O contract', function () {
  let dir: string;
  before(async () => {
    dir = await randomTiny();
  });

  it('writes the onnx-community folder layout', () => {
    const top = readdirSync(dir).sort();
    for (const f of [
      'config.json',
      'generation_config.json',
      'preprocessor_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
      'merges.txt',
      'added_tokens.json',
      'special_tokens_map.json',
      'onnx',
    ]) {
      assert.ok(top.includes(f), `missing ${f}`);
    }
    assert.deepEqual(readdirSync(join(dir, 'onnx')).sort(), [
      'decoder_model.onnx',
      'decoder_model_fp16.onnx',
      'decoder_model_merged.onnx',
      'decoder_model_merged_fp16.onnx',
      'embed_tokens.onnx',
      'embed_tokens_fp16.onnx',
      'encoder_model.onnx',
      'encoder_model_fp16.onnx',
      'vision_encoder.onnx',
      'vision_encoder_fp16.onnx',
    ]);
  });

  for (const [graph, expected] of Object.entries(EXPECTED)) {
    for (const suffix of ['', '_fp16']) {
      it(`${graph}${suffix}.onnx has the contract's inputs and outputs`, async () => {
        const s = await ort.InferenceSession.create(join(dir, 'onnx', `${graph}${suffix}.onnx`), sessionOptions);
        try {
          assert.deepEqual(strip(s.inputMetadata), expected.inputs);
          assert.deepEqual(strip(s.outputMetadata), expected.outputs);
        } finally {
          await s.release();
        }
      });
    }
  }

  it('config.json describes the built size and keeps the florence2 model types', () => {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'florence2');
    assert.equal(config.is_encoder_decoder, true);
    assert.equal(config.text_config.model_type, 'florence2_language');
    assert.equal(config.text_config.d_model, D);
    assert.equal(config.text_config.decoder_layers, L);
    assert.equal(config.text_config.encoder_layers, c.encoderLayers);
    assert.equal(config.text_config.decoder_attention_heads, H);
    assert.equal(config.text_config.decoder_ffn_dim, c.decoderFfn);
    assert.equal(config.text_config.vocab_size, VOCAB_SIZE);
    assert.equal(config.projection_dim, D);
    // As in the onnx-community file, vision_config.model_type is '' (a transformers 4.38 dump).
    assert.deepEqual(config.vision_config.dim_embed, SIZES.tiny.vision.dimEmbed);
    assert.equal(config.vision_config.projection_dim, D);
    const gen = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));
    assert.deepEqual(
      [gen.num_beams, gen.no_repeat_ngram_size, gen.forced_bos_token_id, gen.forced_eos_token_id, gen.decoder_start_token_id],
      [3, 3, 0, 2, 2],
    );
    const pre = JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8'));
    assert.equal(pre.image_seq_length, 577);
  });

  it('ships the real Florence-2 tokenizer without training-time truncation or padding', () => {
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(json.truncation, null);
    assert.equal(json.padding, null);
    const tok = new Tokenizer(json, JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
    assert.equal(tok.token_to_id('<loc_0>'), 50269);
    assert.equal(tok.token_to_id('<and>'), 51288);
    assert.deepEqual(tok.encode('What does the image describe?').ids, [0, 2264, 473, 5, 2274, 6190, 116, 2]);
  });

  it('vision encoder maps 768² to 577 tokens and other sizes to (H/32)(W/32)+1, depending on the image', async () => {
    const s = await ort.InferenceSession.create(join(dir, 'onnx', 'vision_encoder.onnx'), sessionOptions);
    const a = await s.run({ pixel_values: f32(seeded(2 * 3 * 768 * 768, 1), [2, 3, 768, 768]) });
    assert.deepEqual(a.image_features.dims, [2, 577, D]);
    const feats = a.image_features.data as Float32Array;
    assert.ok(maxAbsDiff(feats.subarray(0, 577 * D), feats.subarray(577 * D)) > 0.1, 'two different images give different features');
    const b = await s.run({ pixel_values: f32(seeded(3 * 384 * 512, 2), [1, 3, 384, 512]) });
    assert.deepEqual(b.image_features.dims, [1, 12 * 16 + 1, D]);
    await s.release();
  });

  describe('merged decoder', () => {
    let merged: ort.InferenceSession;
    let plain: ort.InferenceSession;
    const B = 2;
    const S = 7;
    const states = f32(seeded(B * S * D, 3), [B, S, D]);
    const mask = i64([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [B, S]);
    const emptyPast = () => Object.fromEntries(kvNames('past_key_values').map((n) => [n, f32([], [B, H, 0, Dh])]));

    before(async () => {
      merged = await ort.InferenceSession.create(join(dir, 'onnx', 'decoder_model_merged.onnx'), sessionOptions);
      plain = await ort.InferenceSession.create(join(dir, 'onnx', 'decoder_model.onnx'), sessionOptions);
    });
    after(async () => {
      await merged.release();
      await plain.release();
    });

    it('first step takes zero-length past and returns full presents', async () => {
      const out = await merged.run({
        encoder_attention_mask: mask,
        encoder_hidden_states: states,
        inputs_embeds: f32(seeded(B * D, 4), [B, 1, D]),
        use_cache_branch: flag(false),
        ...emptyPast(),
      });
      assert.deepEqual(out.logits.dims, [B, 1, VOCAB_SIZE]);
      assert.deepEqual(out['present.0.decoder.key'].dims, [B, H, 1, Dh]);
      assert.deepEqual(out[`present.${L - 1}.encoder.value`].dims, [B, H, S, Dh]);
    });

    it('cached steps return empty cross-attention presents and match full recomputation', async () => {
      const steps = 4;
      const embeds = seeded(B * steps * D, 5);
      const stepEmbeds = (t: number) => {
        const e = new Float32Array(B * D);
        for (let b = 0; b < B; b++) e.set(embeds.subarray((b * steps + t) * D, (b * steps + t + 1) * D), b * D);
        return f32(e, [B, 1, D]);
      };
      let past: Record<string, ort.Tensor> = emptyPast();
      const cached: Float32Array[] = [];
      for (let t = 0; t < steps; t++) {
        const out = await merged.run({
          encoder_attention_mask: mask,
          encoder_hidden_states: states,
          inputs_embeds: stepEmbeds(t),
          use_cache_branch: flag(t > 0),
          ...past,
        });
        cached.push(out.logits.data as Float32Array);
        if (t > 0) {
          for (let i = 0; i < L; i++) assert.deepEqual(out[`present.${i}.encoder.key`].dims, [0, H, 1, Dh]);
        }
        const next: Record<string, ort.Tensor> = {};
        for (let i = 0; i < L; i++) {
          for (const kv of ['key', 'value']) {
            next[`past_key_values.${i}.decoder.${kv}`] = out[`present.${i}.decoder.${kv}`];
            // optimum's merged export: cross-attention KV comes from the first step only
            next[`past_key_values.${i}.encoder.${kv}`] =
              t === 0 ? out[`present.${i}.encoder.${kv}`] : past[`past_key_values.${i}.encoder.${kv}`];
          }
        }
        past = next;
      }
      const full = await plain.run({
        encoder_attention_mask: mask,
        encoder_hidden_states: states,
        inputs_embeds: f32(embeds, [B, steps, D]),
      });
      const fullLogits = full.logits.data as Float32Array;
      const V = VOCAB_SIZE;
      for (let t = 0; t < steps; t++) {
        for (let b = 0; b < B; b++) {
          const expected = fullLogits.subarray((b * steps + t) * V, (b * steps + t + 1) * V);
          assert.ok(maxAbsDiff(cached[t].subarray(b * V, (b + 1) * V), expected) < 1e-3, `step ${t} row ${b}`);
        }
      }
    });

    it('the encoder attention mask is honoured: masked positions do not change the output', async () => {
      const e = f32(seeded(B * D, 6), [B, 1, D]);
      const a = await merged.run({
        encoder_attention_mask: mask,
        encoder_hidden_states: states,
        inputs_embeds: e,
        use_cache_branch: flag(false),
        ...emptyPast(),
      });
      const changed = Float32Array.from(states.data);
      for (let k = 0; k < D; k++) changed[(1 * S + 6) * D + k] += 5; // row 1, position 6 is masked
      const b = await merged.run({
        encoder_attention_mask: mask,
        encoder_hidden_states: f32(changed, [B, S, D]),
        inputs_embeds: e,
        use_cache_branch: flag(false),
        ...emptyPast(),
      });
      assert.ok(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array) < 1e-4);
      for (let k = 0; k < D; k++) changed[(1 * S + 2) * D + k] += 5; // an attended position does change it
      const c2 = await merged.run({
        encoder_attention_mask: mask,
        encoder_hidden_states: f32(changed, [B, S, D]),
        inputs_embeds: e,
        use_cache_branch: flag(false),
        ...emptyPast(),
      });
      assert.ok(maxAbsDiff(a.logits.data as Float32Array, c2.logits.data as Float32Array) > 1e-3);
    });
  });

  it('fp16 variants store half-precision weights and compute close to fp32', async () => {
    const bytes = (f: string) => readFileSync(join(dir, 'onnx', f)).length;
    assert.ok(bytes('embed_tokens_fp16.onnx') < 0.55 * bytes('embed_tokens.onnx'));
    const ids = i64([0, 574, 22486, 5, 8720, 2], [1, 6]);
    const full = await ort.InferenceSession.create(join(dir, 'onnx', 'embed_tokens.onnx'), sessionOptions);
    const half = await ort.InferenceSession.create(join(dir, 'onnx', 'embed_tokens_fp16.onnx'), sessionOptions);
    const a = (await full.run({ input_ids: ids })).inputs_embeds.data as Float32Array;
    const b = (await half.run({ input_ids: ids })).inputs_embeds.data as Float32Array;
    const err = maxAbsDiff(a, b);
    assert.ok(err > 0 && err < 2e-3, `fp16 rounding error ${err}`);
    await full.release();
    await half.release();
  });

  it('is deterministic: the same seed gives identical files, another seed different weights', async function () {
    const tmp = await mkdtemp(join(tmpdir(), 'synth-determinism-'));
    try {
      const hash = (d: string, f: string) =>
        createHash('sha256')
          .update(readFileSync(join(d, 'onnx', f)))
          .digest('hex');
      await buildModel({ size: 'tiny', seed: 1, out: join(tmp, 'a') });
      await buildModel({ size: 'tiny', seed: 2, out: join(tmp, 'b') });
      for (const f of ['vision_encoder.onnx', 'embed_tokens.onnx', 'encoder_model.onnx', 'decoder_model_merged.onnx']) {
        assert.equal(hash(join(tmp, 'a'), f), hash(dir, f), `${f} differs between two builds with seed 1`);
        assert.notEqual(hash(join(tmp, 'b'), f), hash(dir, f), `${f} is the same with seed 2`);
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
