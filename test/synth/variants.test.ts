/**
 * Every ONNX variant the Hub ships, as the synthetic builder writes it: the operators and element
 * types of each (tools/synth/README "Variants"), kernels that compute with exactly the weights the
 * quantizer wrote, the same I/O as fp32, loading in the project's backend, scripted models still
 * emitting their script, and transformers.js (loaded with the same dtype) agreeing token for token.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { copyFile, cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { type RawImage } from '@huggingface/transformers';
import { loadTjsModel, loadTjsProcessor, testImage } from '../helpers/tjs';
import { CAR_SCRIPT, randomTiny, tinyModel } from '../helpers/synth-models';
import { DTYPE_SUFFIX, MODULES, type Dtype, type ModuleName } from '../../src/runtime/model-files';
import { ModelLoadError, OrtBackend, unsupportedOperator } from '../../src/runtime/ort-backend';
import { readModelConfig } from '../../src/florence/model-config';
import { encodeInputs } from '../../src/florence/pipeline';
import { generate } from '../../src/florence/generation/loop';
import { DataType, GraphBuilder, type WeightFormat, writeModel } from '../../tools/synth/onnx-graph';
import { tokenizeScript, weightFormat } from '../../tools/synth/build';
import { dequantize4, dequantize8, dequantizeBnb4, quantize4, quantize8, quantizeBnb4 } from '../../tools/synth/quantize';
import { fromHalfBits, toHalfBits } from '../../tools/synth/fp16';

const ALL = Object.keys(DTYPE_SUFFIX) as Dtype[];

function seeded(n: number, seed: number, spread = 2): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * spread;
  });
}

/** Row-major [M, K] @ [K, N] in float64. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let r = 0; r < k; r++) out[i * n + j] += a[i * k + r] * b[r * n + j];
  return out;
}

/** What DynamicQuantizeLinear does to an activation tensor (uint8, range widened to include 0, ties to even). */
function dynamicQuantize(x: Float32Array): Float32Array {
  const lo = Math.min(0, ...x);
  const hi = Math.max(0, ...x);
  const scale = Math.fround((hi - lo) / 255);
  const roundEven = (v: number) => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
  const zero = Math.max(0, Math.min(255, roundEven(-lo / scale)));
  return x.map((v) => (Math.max(0, Math.min(255, roundEven(v / scale) + zero)) - zero) * scale);
}

interface NodeInfo {
  opType: string;
  domain: string;
  attrs: Record<string, number>;
}

/** Every node of a model (subgraphs included), and the element type of each initializer, read from the file. */
function readGraph(file: string): { nodes: NodeInfo[]; initTypes: Map<string, number> } {
  const model = onnx.ModelProto.decode(readFileSync(file));
  const nodes: NodeInfo[] = [];
  const initTypes = new Map<string, number>();
  const walk = (g: onnx.IGraphProto) => {
    for (const t of g.initializer ?? []) initTypes.set(t.name!, t.dataType!);
    for (const n of g.node ?? []) {
      const attrs: Record<string, number> = {};
      for (const a of n.attribute ?? []) {
        if (a.g) walk(a.g);
        else if (a.type === onnx.AttributeProto.AttributeType.INT) attrs[a.name!] = Number(a.i);
      }
      nodes.push({ opType: n.opType!, domain: n.domain ?? '', attrs });
    }
  };
  walk(model.graph!);
  return { nodes, initTypes };
}

const ops = (nodes: NodeInfo[]) => new Set(nodes.map((n) => n.opType));

describe('synthetic model: ONNX variants (fp16, q8, int8, uint8, q4, q4f16, bnb4)', function () {
  describe('kernels compute with the weights the quantizer wrote', () => {
    let tmp: string;
    before(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'florence2-variants-'));
    });
    after(() => rm(tmp, { recursive: true, force: true }));

    // K = 80 is not a multiple of the 4-bit block (32): the last block is padded
    const M = 3;
    const K = 80;
    const N = 24;
    const w = seeded(K * N, 7, 0.3);
    const x = seeded(M * K, 11, 1.5);

    async function runMatMul(format: WeightFormat): Promise<Float32Array> {
      const g = new GraphBuilder('one_matmul', { format });
      g.input('x', DataType.FLOAT, [M, K]);
      g.output(
        'y',
        DataType.FLOAT,
        [M, N],
        g.matMulWeight(g, 'x', 'w', K, N, () => w),
      );
      const file = join(tmp, `${format.quant}${format.fp16 ? '_f16' : ''}.onnx`);
      await writeModel(file, g, { producerName: 'test', producerVersion: '1', opset: 17, irVersion: 8 });
      const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
      try {
        const out = await session.run({ x: new ort.Tensor('float32', x, [M, K]) });
        return out.y.data as Float32Array;
      } finally {
        await session.release();
      }
    }

    function assertClose(actual: Float32Array, expected: Float64Array, tol: number, what: string) {
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
      assert.ok(worst <= tol, `${what}: max |difference| ${worst} > ${tol}`);
    }

    for (const signed of [true, false]) {
      it(`MatMulInteger with ${signed ? 'int8' : 'uint8'} weights equals x̂ @ dequantized W`, async () => {
        const q = quantize8(w, signed);
        assert.equal(q.q instanceof Int8Array, signed);
        if (signed) assert.equal(q.zeroPoint, 0);
        const expected = matmul(dynamicQuantize(x), dequantize8(q), M, K, N);
        assertClose(await runMatMul({ fp16: false, quant: signed ? 'int8' : 'uint8' }), expected, 1e-4, 'MatMulInteger');
      });
    }

    it('MatMulNBits (4 bits, blocks of 32) equals x @ dequantized W; rounding is within half a step, one step where clipped', async () => {
      const q = quantize4(w, K, N);
      const deq = dequantize4(q);
      for (let i = 0; i < w.length; i++) {
        const scale = q.scales[(i % N) * Math.ceil(K / 32) + Math.floor(Math.floor(i / N) / 32)];
        // the block's extreme maps to code 0 (-8 steps); the other side ends at +7 steps
        const clipped = w[i] / scale > 7.5;
        const bound = (clipped ? 1 : 0.5) * Math.abs(scale) + 1e-7;
        assert.ok(Math.abs(deq[i] - w[i]) <= bound, `weight ${i}: ${deq[i]} vs ${w[i]} (scale ${scale})`);
      }
      assertClose(await runMatMul({ fp16: false, quant: 'q4' }), matmul(x, deq, M, K, N), 1e-4, 'MatMulNBits');
    });

    it('MatMulNBits on float16 (q4f16) equals the same product to float16 precision', async () => {
      const q = quantize4(w, K, N);
      const halfScales = { ...q, scales: q.scales.map((s) => fromHalfBits(toHalfBits(s))) };
      const halfX = x.map((v) => fromHalfBits(toHalfBits(v)));
      const expected = matmul(halfX, dequantize4(halfScales), M, K, N);
      assertClose(await runMatMul({ fp16: true, quant: 'q4' }), expected, 2e-2, 'MatMulNBits fp16');
    });

    it('MatMulBnb4 (NF4, blocks of 64) equals x @ dequantized W', async () => {
      const deq = dequantizeBnb4(quantizeBnb4(w, K, N));
      assertClose(await runMatMul({ fp16: false, quant: 'bnb4' }), matmul(x, deq, M, K, N), 1e-4, 'MatMulBnb4');
    });

    it('a wrong nibble order would be caught: swapping nibbles changes the product', async () => {
      const q = quantize4(w, K, N);
      const swapped = { ...q, packed: q.packed.map((b) => ((b & 0xf) << 4) | (b >> 4)) };
      const right = matmul(x, dequantize4(q), M, K, N);
      const wrong = matmul(x, dequantize4(swapped), M, K, N);
      assert.ok(right.some((v, i) => Math.abs(v - wrong[i]) > 1e-2));
    });
  });

  describe('a tiny model in every variant', () => {
    let dir: string;
    before(async () => {
      dir = await tinyModel({ name: 'tiny-car-all-variants', script: CAR_SCRIPT, seed: 3, dtypes: ALL });
    });
    const file = (m: ModuleName, d: Dtype) => join(dir, 'onnx', `${m}${DTYPE_SUFFIX[d]}.onnx`);

    it('each variant of each module has the operators and weight types of its kind', () => {
      for (const d of ALL) {
        for (const m of MODULES) {
          const what = `${m}${DTYPE_SUFFIX[d]}.onnx`;
          const { nodes, initTypes } = readGraph(file(m, d));
          const types = new Set(initTypes.values());
          const kinds = ops(nodes);
          const f = weightFormat(d, m);
          const hasMatMul = m !== 'embed_tokens';
          // fp16 storage: float16 weights where the variant stores them, none elsewhere
          if (f.fp16) assert.ok(types.has(DataType.FLOAT16), `${what}: no float16 weights`);
          else assert.ok(!types.has(DataType.FLOAT16), `${what}: float16 weights`);
          if (f.quant === 'int8' || f.quant === 'uint8') {
            const weightType = f.quant === 'int8' ? DataType.INT8 : DataType.UINT8;
            assert.ok(types.has(weightType), `${what}: no ${f.quant} weights`);
            assert.ok(!types.has(f.quant === 'int8' ? DataType.UINT8 : DataType.INT8), `${what}: mixed 8-bit weight types`);
            if (hasMatMul) for (const op of ['DynamicQuantizeLinear', 'MatMulInteger']) assert.ok(kinds.has(op), `${what}: no ${op}`);
            if (m === 'vision_encoder') {
              assert.ok(kinds.has('ConvInteger') && !kinds.has('Conv'), `${what}: convolutions are not ConvInteger`);
            }
            if (m === 'embed_tokens') assert.ok(kinds.has('DequantizeLinear'), `${what}: the table is not quantized`);
          }
          if (f.quant === 'q4') {
            const nbits = nodes.filter((n) => n.opType === 'MatMulNBits');
            assert.equal(nbits.length > 0, hasMatMul, `${what}: MatMulNBits count ${nbits.length}`);
            for (const n of nbits) {
              assert.equal(n.domain, 'com.microsoft');
              assert.equal(n.attrs.bits, 4);
              assert.equal(n.attrs.block_size, 32);
            }
          }
          if (f.quant === 'bnb4') {
            const bnb = nodes.filter((n) => n.opType === 'MatMulBnb4');
            assert.equal(bnb.length > 0, hasMatMul, `${what}: MatMulBnb4 count ${bnb.length}`);
            for (const n of bnb) assert.deepEqual([n.domain, n.attrs.quant_type, n.attrs.block_size], ['com.microsoft', 1, 64]);
          }
          if (f.quant !== 'none' && hasMatMul) {
            // no MatMul by a weight is left: every remaining MatMul multiplies two activations (attention)
            // a float16 weight reaches its MatMul through a Cast named `<weight>_f32`
            const weightNames = new Set([...initTypes.keys()].flatMap((n) => [n, `${n}_f32`]));
            const model = onnx.ModelProto.decode(readFileSync(file(m, d)));
            const all: onnx.INodeProto[] = [];
            const collect = (g: onnx.IGraphProto) =>
              (g.node ?? []).forEach((n) => (all.push(n), (n.attribute ?? []).forEach((a) => a.g && collect(a.g))));
            collect(model.graph!);
            const byWeight = all.filter((n) => n.opType === 'MatMul' && weightNames.has(n.input![1]));
            assert.equal(byWeight.length, 0, `${what}: ${byWeight.length} MatMuls by a float weight`);
          }
        }
      }
      // q8 (`_quantized`): uint8 weights where the graph has convolutions, int8 elsewhere
      assert.equal(weightFormat('q8', 'vision_encoder').quant, 'uint8');
      for (const m of ['embed_tokens', 'encoder_model', 'decoder_model_merged']) assert.equal(weightFormat('q8', m).quant, 'int8');
    });

    it('every variant has the fp32 files’ inputs and outputs (names, element types, shapes) and loads in the backend', async () => {
      const meta = (s: ort.InferenceSession) =>
        JSON.stringify(
          [s.inputMetadata, s.outputMetadata].map((list) => list.map((x) => (x.isTensor ? [x.name, x.type, x.shape] : x.name))),
        );
      const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1 };
      for (const m of MODULES) {
        const ref = await ort.InferenceSession.create(file(m, 'fp32'), opts);
        const expected = meta(ref);
        await ref.release();
        for (const d of ALL.filter((x) => x !== 'fp32')) {
          const s = await ort.InferenceSession.create(file(m, d), opts);
          assert.equal(meta(s), expected, `${m} ${d}`);
          await s.release();
        }
      }
      const dims = readModelConfig(dir).dims;
      for (const d of ALL) {
        const backend = await OrtBackend.open(dir, dims, { dtype: d, intraOpNumThreads: 1 });
        assert.match(backend.files.vision_encoder, new RegExp(`vision_encoder${DTYPE_SUFFIX[d]}\\.onnx$`));
        await backend.release();
      }
    });

    it('the scripted model emits its script under every variant, greedy and beam search (3 beams), in our backend', async () => {
      const processor = await loadTjsProcessor(dir);
      const x = await processor([testImage(640, 480, 1)], processor.construct_prompts(['<OD>']), { padding: true });
      const px = x.pixel_values as { data: Float32Array; dims: number[] };
      const ids = x.input_ids as { data: BigInt64Array };
      const mask = x.attention_mask as { data: BigInt64Array };
      const expected = [2, 0, ...(await tokenizeScript(CAR_SCRIPT)), 2];
      const { dims, generation } = readModelConfig(dir);
      for (const d of ALL) {
        const backend = await OrtBackend.open(dir, dims, { dtype: d, intraOpNumThreads: 1 });
        try {
          const { states } = await encodeInputs(backend, px.data, px.dims as [number, number, number, number], ids.data, mask.data, 1024);
          for (const numBeams of [1, 3]) {
            const out = await generate(backend, states, {
              ...generation,
              numBeams,
              earlyStopping: true,
              maxNewTokens: 20,
            });
            assert.deepEqual(out.sequences[0]?.ids, expected, `${d}, ${numBeams} beam(s)`);
          }
        } finally {
          await backend.release();
        }
      }
    });
  });

  describe('a variant this onnxruntime cannot run', () => {
    it('fails at load with the module, dtype, file and operator named', async () => {
      const src = await randomTiny();
      const dir = await mkdtemp(join(tmpdir(), 'florence2-unrunnable-'));
      try {
        await cp(src, dir, { recursive: true });
        // a q4 vision encoder whose quantized matmul uses an operator this build has no kernel for
        const g = new GraphBuilder('vision_encoder');
        g.input('pixel_values', DataType.FLOAT, ['batch_size', 3, 'height', 'width']);
        g.output('image_features', DataType.FLOAT, null, g.node('MatMulQ3Experimental', ['pixel_values'], {}, 1)[0]);
        const file = join(dir, 'onnx', 'vision_encoder_q4.onnx');
        await writeModel(file, g, { producerName: 'test', producerVersion: '1', opset: 17, irVersion: 8 });
        for (const m of ['embed_tokens', 'encoder_model', 'decoder_model_merged'])
          await copyFile(join(dir, 'onnx', `${m}.onnx`), join(dir, 'onnx', `${m}_q4.onnx`));
        await assert.rejects(OrtBackend.open(dir, readModelConfig(dir).dims, { dtype: 'q4', intraOpNumThreads: 1 }), (e: unknown) => {
          assert.ok(e instanceof ModelLoadError, String(e));
          assert.match(e.message, /^cannot load vision_encoder \(dtype q4\) from .*vision_encoder_q4\.onnx: /);
          assert.match(e.message, /cannot run operator MatMulQ3Experimental/);
          assert.match(e.message, /load vision_encoder with another dtype \(fp32 runs everywhere\)/);
          return true;
        });
        // the other modules' q4 files with an fp32 vision encoder load
        const mixed = await OrtBackend.open(dir, readModelConfig(dir).dims, {
          dtype: { embed_tokens: 'q4', encoder_model: 'q4', decoder_model_merged: 'q4' },
          intraOpNumThreads: 1,
        });
        await mixed.release();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('names the operator in onnxruntime’s missing-kernel and unknown-operator messages', () => {
      assert.deepEqual(unsupportedOperator("Could not find an implementation for ConvInteger(10) node with name '/vision/Conv_quant'"), {
        op: 'ConvInteger (opset 10)',
        node: '/vision/Conv_quant',
      });
      assert.deepEqual(unsupportedOperator('Fatal error: com.microsoft:MatMulBnb4(-1) is not a registered function/op'), {
        op: 'com.microsoft:MatMulBnb4',
      });
      assert.deepEqual(unsupportedOperator('Error No Op registered for Foo with domain_version of 17'), { op: 'Foo' });
      assert.equal(unsupportedOperator('Protobuf parsing failed.'), null);
    });
  });

  describe('transformers.js with the same dtype gives the same greedy tokens as ours', () => {
    const cut = (r: number[]) => (r.indexOf(2, 1) < 0 ? r : r.slice(0, r.indexOf(2, 1) + 1));

    for (const kind of ['random', 'scripted'] as const) {
      it(`${kind} tiny model, every variant, two images and tasks`, async () => {
        const dir =
          kind === 'random'
            ? await tinyModel({ name: 'tiny-random-all-variants', seed: 5, dtypes: ALL })
            : await tinyModel({ name: 'tiny-car-all-variants', script: CAR_SCRIPT, seed: 3, dtypes: ALL });
        const processor = await loadTjsProcessor(dir);
        const images: RawImage[] = [testImage(640, 480, 2), testImage(300, 400, 3)];
        const x = await processor(images, processor.construct_prompts(['<OD>', '<CAPTION>']), { padding: true });
        const px = x.pixel_values as { data: Float32Array; dims: number[] };
        const ids = x.input_ids as { data: BigInt64Array };
        const mask = x.attention_mask as { data: BigInt64Array };
        const { dims, generation } = readModelConfig(dir);
        const fp32: number[][] = [];
        for (const d of ALL) {
          const model = await loadTjsModel(dir, d);
          const theirs = ((await model.generate({ ...x, max_new_tokens: 12, num_beams: 1, do_sample: false })) as { tolist(): bigint[][] })
            .tolist()
            .map((r) => cut(r.map(Number)));
          await model.dispose();
          const backend = await OrtBackend.open(dir, dims, { dtype: d, intraOpNumThreads: 1 });
          try {
            const { states } = await encodeInputs(backend, px.data, px.dims as [number, number, number, number], ids.data, mask.data, 1024);
            const ours = (
              await generate(backend, states, { ...generation, numBeams: 1, earlyStopping: true, maxNewTokens: 12 })
            ).sequences.map((s) => s?.ids ?? []);
            assert.deepEqual(ours, theirs, `${kind} ${d}`);
            if (d === 'fp32') fp32.push(...ours);
            // a random model's quantized tokens differ from fp32's somewhere: the variants are not copies
            if (kind === 'random' && (d === 'q4' || d === 'bnb4')) assert.notDeepEqual(ours, fp32, `${d} equals fp32`);
          } finally {
            await backend.release();
          }
        }
      });
    }
  });
});
