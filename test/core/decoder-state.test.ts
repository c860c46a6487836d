/**
 * Decoder state in the onnxruntime backend: row operations (beam reordering, finished rows leaving,
 * encoder states laid out per row) as Gather graphs against JavaScript copies, caches released
 * however a generation ends, and the bytes that cross `session.run` per decoder step. The WebGPU
 * part (the backend, and a server on --devices webgpu) runs where onnxruntime finds a WebGPU adapter (a
 * GPU, or Mesa's lavapipe as .ci/run installs).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { type PipelineParts, type RunOutcome, type RunRequest, runBatchSettled } from '../../src/florence/pipeline';
import { preprocessOptionsFromConfig, readPreprocessorConfig } from '../../src/florence/preprocess';
import { FlorenceTokenizer } from '../../src/florence/tokenizer';
import { readModelConfig } from '../../src/florence/model-config';
import { OrtBackend, type OrtBackendOptions } from '../../src/runtime/ort-backend';
import { rowGatherModel, webgpuUnavailable } from '../../src/runtime/row-gather';
import { carTiny, randomTiny } from '../helpers/synth-models';
import { decodeSteps } from '../helpers/decode-steps';
import { waitFor } from '../helpers/wait';
import { call, metricSample, scrapeMetrics, type ServerProcess, startServerProcess } from '../helpers/server-process';
import type { DetectResponse__Output } from 'florence2-client/generated/florence2/v1/DetectResponse';

async function partsFor(dir: string, options: OrtBackendOptions): Promise<{ parts: PipelineParts; backend: OrtBackend }> {
  const config = readModelConfig(dir);
  const backend = await OrtBackend.open(dir, config.dims, { intraOpNumThreads: 1, recordTransfers: true, ...options });
  const pre = readPreprocessorConfig(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')));
  return {
    backend,
    parts: {
      backend,
      tokenizer: FlorenceTokenizer.fromDir(dir),
      preprocess: preprocessOptionsFromConfig(pre),
      generation: config.generation,
      encoderMaxPositions: config.encoderMaxPositions,
    },
  };
}

function noise(width: number, height: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let s = seed * 2654435761;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return data;
}
const png = (width: number, height: number, seed: number) =>
  sharp(noise(width, height, seed), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();

/** Three images with prompts of different lengths; limits that make rows leave at different steps. */
async function batch(): Promise<{ requests: RunRequest[]; limits: number[] }> {
  return {
    requests: [
      { image: await png(320, 240, 1), task: '<OD>' },
      { image: await png(200, 300, 2), task: '<CAPTION_TO_PHRASE_GROUNDING>', text: 'a red car next to a tall green tree' },
      { image: await png(256, 256, 3), task: '<MORE_DETAILED_CAPTION>' },
    ],
    limits: [3, 9, 6],
  };
}

/** What must not depend on how rows are gathered. */
const answers = (outcomes: RunOutcome[]) =>
  outcomes.map((o) =>
    o.ok ? { tokenIds: o.result.tokenIds, result: o.result.result, steps: o.result.batch.steps } : { error: String(o.error) },
  );

async function runAll(parts: PipelineParts, requests: RunRequest[], limits: number[], numBeams: number, stopAt?: number) {
  let steps = 0;
  return runBatchSettled(parts, requests, {
    generation: { numBeams },
    items: limits.map((maxNewTokens, i) => ({
      maxNewTokens,
      // The second request is stopped mid-generation: its rows leave the batch by a stop.
      shouldStop: i === 1 && stopAt !== undefined ? () => steps++ >= stopAt : undefined,
    })),
  });
}

describe('decoder state: Gather-graph row operations, cache release, bytes per step', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => {
    dir = await randomTiny();
  });

  it('the row-gather graph picks and repeats first-axis rows of every type it takes', async () => {
    const session = await ort.InferenceSession.create(rowGatherModel(['float32', 'int64', 'float16']), { executionProviders: ['cpu'] });
    const out = await session.run({
      rows: new ort.Tensor('int64', BigInt64Array.of(2n, 0n, 0n), [3]),
      x0: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 12 }, (_, i) => i),
        [3, 2, 2],
      ),
      x1: new ort.Tensor('int64', BigInt64Array.of(1n, 2n, 3n), [3]),
      x2: new ort.Tensor('float16', Uint16Array.of(10, 11, 20, 21, 30, 31), [3, 2]),
    });
    assert.deepEqual(out.y0.dims, [3, 2, 2]);
    assert.deepEqual(Array.from(out.y0.data as Float32Array), [8, 9, 10, 11, 0, 1, 2, 3, 0, 1, 2, 3]);
    assert.deepEqual(Array.from(out.y1.data as BigInt64Array), [3n, 1n, 1n]);
    assert.deepEqual(Array.from(out.y2.data as Uint16Array), [30, 31, 10, 11, 10, 11]);
    await session.release();
  });

  for (const numBeams of [1, 3]) {
    it(`${numBeams === 1 ? 'greedy' : '3 beams'}: Gather graphs on the CPU provider give the same outputs as JavaScript copies (3 images, rows leaving, a stop)`, async () => {
      const { requests, limits } = await batch();
      const copy = await partsFor(dir, { rowOps: 'copy' });
      const graph = await partsFor(dir, { rowOps: 'graph' });
      try {
        assert.equal(copy.backend.rowOps, 'copy');
        assert.equal(graph.backend.rowOps, 'graph');
        for (const stopAt of [undefined, 2]) {
          const a = answers(await runAll(copy.parts, requests, limits, numBeams, stopAt));
          const b = answers(await runAll(graph.parts, requests, limits, numBeams, stopAt));
          assert.deepEqual(b, a);
          assert.equal(a.filter((x) => 'error' in x).length, stopAt === undefined ? 0 : 1, 'the stopped request fails alone');
          // The items ran different numbers of steps, so rows left the batch along the way.
          assert.ok(new Set(a.filter((x) => 'tokenIds' in x).map((x) => (x as { tokenIds: number[] }).tokenIds.length)).size > 1);
        }
        assert.equal(copy.backend.liveTensors, 0, 'copy: every cache released');
        assert.equal(graph.backend.liveTensors, 0, 'graph: every cache released');
      } finally {
        await copy.backend.release();
        await graph.backend.release();
      }
    });
  }

  it('a decoder step that fails releases the cache it was given: the generation ends with nothing held', async () => {
    const { requests, limits } = await batch();
    const { parts, backend } = await partsFor(dir, { rowOps: 'graph' });
    try {
      let calls = 0;
      const failing = Object.create(backend) as OrtBackend;
      failing.decode = async (input) => {
        calls += 1;
        // A step that fails inside the backend: its cache continues with encoder states it was not made for.
        return backend.decode(calls === 3 ? { ...input, encoder: { ...input.encoder } } : input);
      };
      await assert.rejects(
        runAll({ ...parts, backend: failing }, requests, limits, 3),
        /a decoder cache went on with other encoder states/,
      );
      assert.equal(calls, 3);
      assert.equal(backend.liveTensors, 0);
    } finally {
      await backend.release();
    }
  });

  it('the server counts decoder transfer bytes per device: host state sends the cache back every step', async () => {
    const server = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu']);
    try {
      await server.serving;
      const before = await transferBytes(server, 'cpu:0');
      await call<object, DetectResponse__Output>(server.client, 'Detect', { image: { data: await png(640, 480, 9) } });
      const after = await transferBytes(server, 'cpu:0');
      const rowLogits = readModelConfig(await carTiny()).dims.vocabSize * 4;
      const sent = after.hostToDevice - before.hostToDevice;
      const received = after.deviceToHost - before.deviceToHost;
      // Present K/V come back beside the logits, and the past K/V and encoder states go in at every step:
      // far from the device path's "next to nothing in" (its test: under 1% of what comes out).
      assert.ok(received > rowLogits && received % rowLogits !== 0, `${received} bytes out`);
      assert.ok(sent > received / 10, `${sent} bytes in, ${received} out`);
    } finally {
      await server.stop();
    }
  });

  it('host state: the bytes counted per step are every tensor that crosses session.run (they grow with the cache and the encoder)', async () => {
    const { backend } = await partsFor(dir, {});
    try {
      const { dModel: D, decoderLayers: L, decoderHeads: H, headDim: Dh, vocabSize: V } = backend.dims;
      const R = 2;
      for (const S of [5, 11]) {
        const steps = await decodeSteps(backend, S, R, 4, false);
        assert.equal(backend.liveTensors, 0);
        steps.forEach((step, t) => {
          const kv = (len: number) => 2 * L * R * H * len * Dh * 4;
          const cross = 2 * L * R * H * S * Dh * 4;
          // input_ids; embeddings, encoder states and mask, use_cache_branch, past self and cross K/V into the decoder
          const h2d = R * 8 + R * D * 4 + R * S * D * 4 + R * S * 8 + 1 + kv(t) + (t === 0 ? 0 : cross);
          // embeddings out of embed_tokens; logits and present self K/V (the cross K/V on the first step)
          const d2h = R * D * 4 + R * V * 4 + kv(t + 1) + (t === 0 ? cross : 0);
          assert.deepEqual(step, { rows: R, first: t === 0, hostToDevice: h2d, deviceToHost: d2h }, `S ${S}, step ${t}`);
        });
      }
    } finally {
      await backend.release();
    }
  });
});

/**
 * The server's decoder transfer counters for `device`, once every batch begun there has ended: a
 * request is answered as soon as it is final, and its batch's counters are added when the batch ends.
 */
async function transferBytes(server: ServerProcess, device: string): Promise<{ hostToDevice: number; deviceToHost: number }> {
  return waitFor(
    async () => {
      const text = await scrapeMetrics(server);
      const begun = metricSample(text, 'florence2_batch_size_requests_count', { device }) ?? 0;
      const ended = metricSample(text, 'florence2_decoder_step_seconds_count', { device }) ?? 0;
      if (begun !== ended) return null;
      const of = (direction: string) => metricSample(text, 'florence2_decoder_transfer_bytes_total', { device, direction }) ?? 0;
      return { hostToDevice: of('host_to_device'), deviceToHost: of('device_to_host') };
    },
    { what: `every batch on ${device} to end` },
  );
}

describe('decoder state on a WebGPU device', function () {
  this.timeout(300_000);
  let dir: string;
  before(async function () {
    const why = await webgpuUnavailable();
    if (why !== null) {
      console.log(`      (no WebGPU adapter here: ${why.trim()})`);
      this.skip();
    }
    dir = await randomTiny();
  });

  it('state kept on the device gives the outputs of host state on the same provider (3 images, rows leaving, a stop; greedy and 3 beams)', async () => {
    const { requests, limits } = await batch();
    const device = await partsFor(dir, { executionProviders: ['webgpu'] });
    const host = await partsFor(dir, { executionProviders: ['webgpu'], decoderState: 'host' });
    try {
      assert.equal(device.backend.decoderState, 'device', 'the default on webgpu');
      for (const numBeams of [1, 3]) {
        for (const stopAt of [undefined, 2]) {
          const a = answers(await runAll(host.parts, requests, limits, numBeams, stopAt));
          const b = answers(await runAll(device.parts, requests, limits, numBeams, stopAt));
          assert.deepEqual(b, a, `${numBeams} beams, stop ${stopAt}`);
        }
      }
      assert.equal(device.backend.liveTensors, 0, 'every device buffer released');
    } finally {
      await device.backend.release();
      await host.backend.release();
    }
  });

  it('per step only token ids, row indices and one flag go in and logits come out: at most rows × (vocab × 4 + 64) bytes, whatever the encoder length', async () => {
    const { backend } = await partsFor(dir, { executionProviders: ['webgpu'] });
    try {
      const V = backend.dims.vocabSize;
      const R = 3;
      const after: number[][] = [];
      for (const S of [5, 40]) {
        const steps = await decodeSteps(backend, S, R, 5, true);
        assert.equal(backend.liveTensors, 0);
        const later = steps.filter((s) => !s.first);
        assert.equal(later.length, 4);
        for (const s of later) {
          assert.ok(s.hostToDevice + s.deviceToHost <= R * (V * 4 + 64), `${s.hostToDevice} + ${s.deviceToHost} bytes`);
          assert.equal(s.deviceToHost, R * V * 4, 'only the logits come back');
        }
        after.push(later.map((s) => s.hostToDevice + s.deviceToHost));
      }
      assert.deepEqual(after[1], after[0], 'independent of the encoder length');
    } finally {
      await backend.release();
    }
  });

  it('florence2 serve --devices webgpu answers concurrent requests on the WebGPU device (decoder state there by default)', async () => {
    const server = await startServerProcess(['--model', await carTiny(), '--devices', 'webgpu']);
    try {
      await server.serving;
      const images = await Promise.all([640, 320, 480].map((w) => png(w, 480, w)));
      const answers = await Promise.all(
        images.map((image) =>
          call<object, DetectResponse__Output>(server.client, 'Detect', { image: { data: image } }, { deadlineMs: 240_000 }),
        ),
      );
      answers.forEach((r, i) => {
        assert.equal(r.meta?.device, 'webgpu:0');
        assert.deepEqual(
          r.boxes.map((b) => b.label),
          ['car'],
          `image ${i}`,
        );
      });
      // The scripted box, scaled to each image: 640x480 as in the CPU tests.
      const b = answers[0].boxes[0];
      assert.deepEqual(
        [b.x1, b.y1, b.x2, b.y2].map((v) => Math.round(v * 100) / 100),
        [34.24, 160.08, 597.44, 371.76],
      );
      // Only logits came back from the decoder steps (whole rows of them). What went in is the encoder
      // batch, once per generation, then token ids: a few percent of what came out (host state on CPU
      // sends more than it receives).
      const bytes = await transferBytes(server, 'webgpu:0');
      const rowLogits = readModelConfig(await carTiny()).dims.vocabSize * 4;
      assert.ok(bytes.deviceToHost > 0 && bytes.deviceToHost % rowLogits === 0, `${bytes.deviceToHost} bytes out`);
      assert.ok(bytes.hostToDevice < bytes.deviceToHost / 20, `${bytes.hostToDevice} bytes in, ${bytes.deviceToHost} out`);
    } finally {
      await server.stop();
    }
  });

  it('device state needs the webgpu provider, and gathers by graphs', async () => {
    await assert.rejects(
      OrtBackend.open(dir, readModelConfig(dir).dims, { decoderState: 'device' }),
      /needs the webgpu execution provider/,
    );
    await assert.rejects(
      OrtBackend.open(dir, readModelConfig(dir).dims, { executionProviders: ['webgpu'], rowOps: 'copy' }),
      /gathered by graphs/,
    );
  });
});
