/**
 * The gRPC server end to end, as a child process on loopback with tiny synthetic models: every RPC,
 * each error status with its field, deadlines and cancellation, overload, health across start and
 * SIGTERM, two device pools, metrics, and a worker crash.
 */
import { near } from '../helpers/assertions';
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import sharp from 'sharp';
import { call, healthStatus, ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny, randomTiny } from '../helpers/synth-models';
import type { DetectResponse__Output } from '../../src/generated/florence2/v1/DetectResponse';
import type { CaptionResponse__Output } from '../../src/generated/florence2/v1/CaptionResponse';
import type { OpenVocabularyResponse__Output } from '../../src/generated/florence2/v1/OpenVocabularyResponse';
import type { SegmentResponse__Output } from '../../src/generated/florence2/v1/SegmentResponse';
import type { OcrResponse__Output } from '../../src/generated/florence2/v1/OcrResponse';
import type { RegionResponse__Output } from '../../src/generated/florence2/v1/RegionResponse';
import type { RunResponse__Output } from '../../src/generated/florence2/v1/RunResponse';
import type { ModelInfo__Output } from '../../src/generated/florence2/v1/ModelInfo';
import type { StreamResponse__Output } from '../../src/generated/florence2/v1/StreamResponse';

const CAR_BOX_640x480 = [34.24, 160.08, 597.44, 371.76];

const png = (width: number, height: number, shade = 120) => sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 200 } } }).png().toBuffer();

async function rejectsWith(p: Promise<unknown>, code: grpc.status, detail?: RegExp): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    assert.equal(grpc.status[e.code], grpc.status[code], `expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.details}`);
    if (detail) assert.match(e.details, detail);
    return e;
  }
  assert.fail(`expected ${grpc.status[code]}, the call succeeded`);
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** The value of a sample line `name{labels} value` whose labels contain every given pair. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

describe('gRPC server (scripted model, two CPU pools)', function () {
  let s: ServerProcess;
  let image: Buffer;

  let healthWhileStarting: { status: string; servingLogged: boolean };
  before(async () => {
    image = await png(640, 480);
    s = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu:0,cpu:1', '--max-image-pixels', '4000000', '--test-hooks']);
    // Asked as soon as the port is bound, while the workers are still loading.
    const status = await healthStatus(s, 'florence2.v1.Florence2');
    healthWhileStarting = { status, servingLogged: s.logs.some((l) => l.msg === 'serving') };
    await s.serving;
  });
  after(async () => {
    const code = await s?.stop();
    assert.equal(code, 0);
  });

  it('reports NOT_SERVING until every worker is warm, then SERVING', async () => {
    // Loading and warming two workers takes seconds, far longer than one health call after bind.
    assert.equal(healthWhileStarting.servingLogged, false, 'workers were already warm when health was first asked');
    assert.equal(healthWhileStarting.status, 'NOT_SERVING');
    assert.equal(await healthStatus(s), 'SERVING');
    assert.equal(await healthStatus(s, 'florence2.v1.Florence2'), 'SERVING');
  });

  it('Detect finds the scripted car, scaled to the image, with a score when asked', async () => {
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { include_scores: true, include_raw_text: true } });
    assert.equal(r.boxes.length, 1);
    near([r.boxes[0].x1, r.boxes[0].y1, r.boxes[0].x2, r.boxes[0].y2], CAR_BOX_640x480);
    assert.equal(r.boxes[0].label, 'car');
    assert.ok(r.boxes[0].score > 0.99 && r.boxes[0].score <= 1);
    assert.equal(r.meta!.raw_text, '</s><s>car<loc_53><loc_333><loc_933><loc_774></s>');
    assert.equal(r.meta!.generated_tokens, 7);
    assert.equal(r.meta!.prompt_tokens, 13);
    assert.deepEqual([r.meta!.image_width, r.meta!.image_height], [640, 480]);
    assert.ok(r.meta!.timings!.total_ms >= r.meta!.timings!.decode_ms && r.meta!.timings!.decode_ms > 0);
    assert.match(r.meta!.request_id, /^[0-9a-f-]{36}$/);
  });

  it('every typed RPC answers with its typed result', async () => {
    const cap = await call<object, CaptionResponse__Output>(s.client, 'Caption', { image: { data: image }, detail: 'CAPTION_DETAIL_PARAGRAPH' });
    assert.equal(cap.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const ov = await call<object, OpenVocabularyResponse__Output>(s.client, 'DetectOpenVocabulary', { image: { data: image }, classes: ['automobile', 'truck'] });
    assert.deepEqual(ov.boxes.map((b) => b.label), ['automobile', 'truck']);
    near([ov.boxes[1].x1, ov.boxes[1].y1, ov.boxes[1].x2, ov.boxes[1].y2], CAR_BOX_640x480);
    const pg = await call<object, DetectResponse__Output>(s.client, 'GroundPhrases', { image: { data: image }, caption: 'A car on a road.' });
    assert.deepEqual(pg.boxes.map((b) => b.label), ['car']);
    const seg = await call<object, SegmentResponse__Output>(s.client, 'Segment', { image: { data: image }, referring_expression: 'the car' });
    assert.equal(seg.instances.length, 1);
    near(seg.instances[0].polygons[0].coords, CAR_BOX_640x480);
    const seg2 = await call<object, SegmentResponse__Output>(s.client, 'Segment', { image: { data: image }, region: { x1: 10, y1: 10, x2: 300, y2: 200 } });
    assert.equal(seg2.instances.length, 1);
    const ocr = await call<object, OcrResponse__Output>(s.client, 'Ocr', { image: { data: image } });
    assert.equal(ocr.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const ocrr = await call<object, OcrResponse__Output>(s.client, 'Ocr', { image: { data: image }, with_regions: true });
    assert.deepEqual(ocrr.lines, []);
    const reg = await call<object, RegionResponse__Output>(s.client, 'DescribeRegion', { image: { data: image }, region: { x1: 33, y1: 160, x2: 597, y2: 371 }, task: 'REGION_TASK_DESCRIPTION' });
    assert.equal(reg.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const run = await call<object, RunResponse__Output>(s.client, 'Run', { detect: { image: { data: image }, kind: 'DETECT_KIND_DENSE_REGION_CAPTIONS' } });
    assert.equal(run.result, 'detect');
    assert.equal(run.detect!.boxes[0].label, 'car');
  });

  it('GetModelInfo describes the model, devices, limits and versions', async () => {
    const info = await call<object, ModelInfo__Output>(s.client, 'GetModelInfo', {});
    assert.deepEqual(info.devices.map((d) => d.name), ['cpu:0', 'cpu:1']);
    assert.equal(info.files.decoder_model_merged, 'decoder_model_merged.onnx');
    assert.equal(Number(info.limits!.max_image_pixels), 4000000);
    assert.equal(info.default_num_beams, 3);
    assert.equal(info.tasks.length, 15);
    assert.equal(info.node_version, process.versions.node);
    assert.match(info.onnxruntime_version, /^1\.\d+/);
  });

  it('server reflection lists the Florence2 and health services and serves their descriptors', async () => {
    const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })) as any;
    const client = new pkg.grpc.reflection.v1.ServerReflection(s.address, grpc.credentials.createInsecure());
    const ask = (req: object) =>
      new Promise<any>((resolve, reject) => {
        const st = client.ServerReflectionInfo();
        st.on('data', (m: unknown) => {
          resolve(m);
          st.end();
        });
        st.on('error', reject);
        st.write(req);
      });
    try {
      const list = await ask({ list_services: '' });
      const names = list.list_services_response.service.map((x: { name: string }) => x.name).sort();
      assert.deepEqual(names, ['florence2.v1.Florence2', 'grpc.health.v1.Health']);
      const file = await ask({ file_containing_symbol: 'florence2.v1.Florence2' });
      assert.ok(file.file_descriptor_response.file_descriptor_proto.length >= 1);
    } finally {
      client.close();
    }
  });

  it('Stream answers every request with its id, and an error for a bad one without ending the stream', async () => {
    const stream = s.client.Stream();
    const got: StreamResponse__Output[] = [];
    const done = new Promise<void>((res, rej) => {
      stream.on('data', (m: StreamResponse__Output) => got.push(m));
      stream.on('end', () => res());
      stream.on('error', rej);
    });
    for (let i = 0; i < 6; i++) stream.write({ request_id: `r${i}`, request: { detect: { image: { data: image } } } });
    stream.write({ request_id: 'bad', request: { caption: { image: { data: Buffer.from('not an image') } } } });
    stream.end();
    await done;
    assert.deepEqual(got.map((g) => g.request_id).sort(), ['bad', 'r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
    const bad = got.find((g) => g.request_id === 'bad')!;
    assert.equal(bad.outcome, 'error');
    assert.equal(bad.error!.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.error!.message, /`request\.caption\.image\.data`/);
    for (const g of got.filter((x) => x.request_id !== 'bad')) assert.equal(g.result!.detect!.boxes[0].label, 'car');
  });

  it('Stream loses nothing when the client reads slowly (the server pauses reading while responses back up)', async () => {
    const stream = s.client.Stream();
    const ids: string[] = [];
    stream.pause();
    const done = new Promise<void>((res, rej) => {
      stream.on('data', (m: StreamResponse__Output) => ids.push(m.request_id));
      stream.on('end', () => res());
      stream.on('error', rej);
    });
    // Invalid requests fail at validation, so responses pile up faster than any inference could.
    for (let i = 0; i < 300; i++) stream.write({ request_id: `x${i}`, request: { detect: { image: { data: Buffer.from('nope') } } } });
    stream.end();
    await new Promise((r) => setTimeout(r, 500));
    stream.resume();
    await done;
    assert.equal(ids.length, 300);
    assert.equal(new Set(ids).size, 300);
  });

  it('both device pools receive work', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } })));
    const devices = new Set(results.map((r) => r.meta!.device));
    assert.deepEqual([...devices].sort(), ['cpu:0', 'cpu:1']);
  });

  describe('INVALID_ARGUMENT names the field and the limit', () => {
    it('missing or undecodable image', async () => {
      await rejectsWith(call(s.client, 'Detect', {}), grpc.status.INVALID_ARGUMENT, /`image\.data` is required/);
      await rejectsWith(call(s.client, 'Detect', { image: { data: Buffer.from('GIF89a garbage') } }), grpc.status.INVALID_ARGUMENT, /`image\.data` is not a decodable image/);
    });
    it('more pixels than the limit, refused from the header', async () => {
      const big = await sharp({ create: { width: 2100, height: 2000, channels: 3, background: 'white' } }).png().toBuffer();
      await rejectsWith(call(s.client, 'Detect', { image: { data: big } }), grpc.status.INVALID_ARGUMENT, /`image\.data` is 2100x2000 = 4200000 pixels; the limit is 4000000/);
    });
    it('text missing where required', async () => {
      await rejectsWith(call(s.client, 'GroundPhrases', { image: { data: image }, caption: '  ' }), grpc.status.INVALID_ARGUMENT, /`caption` is required/);
      await rejectsWith(call(s.client, 'DetectOpenVocabulary', { image: { data: image }, classes: [] }), grpc.status.INVALID_ARGUMENT, /`classes`/);
      await rejectsWith(call(s.client, 'Segment', { image: { data: image } }), grpc.status.INVALID_ARGUMENT, /`target` is required/);
      await rejectsWith(call(s.client, 'Run', {}), grpc.status.INVALID_ARGUMENT, /`task` is required/);
    });
    it('region outside the image (checked against the decoded size)', async () => {
      await rejectsWith(
        call(s.client, 'DescribeRegion', { image: { data: image }, region: { x1: 10, y1: 10, x2: 700, y2: 100 } }),
        grpc.status.INVALID_ARGUMENT,
        /`region`.*640/,
      );
    });
    it('generation overrides beyond the limits', async () => {
      await rejectsWith(call(s.client, 'Detect', { image: { data: image }, options: { num_beams: 9 } }), grpc.status.INVALID_ARGUMENT, /`options\.num_beams` must be <= 8\. Given: 9/);
      await rejectsWith(call(s.client, 'Run', { detect: { image: { data: image }, options: { max_new_tokens: 5000 } } }), grpc.status.INVALID_ARGUMENT, /`detect\.options\.max_new_tokens` must be <= 1024/);
    });
  });

  it('a worker killed on purpose is replaced: its request gets UNAVAILABLE, the next succeeds, a restart is counted', async () => {
    await rejectsWith(call(s.client, 'Detect', { image: { data: image } }, { metadata: { 'x-florence2-test-crash': '1' } }), grpc.status.UNAVAILABLE);
    for (let i = 0; i < 4; i++) {
      const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } });
      assert.equal(r.boxes[0].label, 'car');
    }
    const text = await scrape(s.metricsPort);
    const restarts = ['cpu:0', 'cpu:1'].map((d) => sample(text, 'florence2_worker_restarts_total', { device: d }) ?? 0);
    assert.equal(restarts[0] + restarts[1], 1);
  });

  it('serves Prometheus metrics with plausible values', async () => {
    const text = await scrape(s.metricsPort);
    assert.ok((sample(text, 'florence2_requests_total', { task: 'od', code: 'OK' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_requests_total', { code: 'INVALID_ARGUMENT' }) ?? 0) >= 1);
    assert.ok((sample(text, 'florence2_request_duration_seconds_count', { task: 'od' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_stage_duration_seconds_count', { stage: 'decode' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_generated_tokens_total', { task: 'od' }) ?? 0) >= 70);
    for (const family of ['florence2_queue_wait_seconds_bucket', 'florence2_inflight_requests', 'florence2_queued_requests', 'florence2_worker_busy_ratio', 'florence2_model_info', 'florence2_process_cpu_user_seconds_total']) {
      assert.notEqual(sample(text, family), null, `${family} missing`);
    }
    const busy = sample(text, 'florence2_worker_busy_ratio', { device: 'cpu:0' })!;
    assert.ok(busy >= 0 && busy <= 1);
    const ready = await fetch(`http://127.0.0.1:${s.metricsPort}/readyz`);
    assert.equal(ready.status, 200);
  });
});

describe('gRPC server (random model: long generations, one pool, small queue)', function () {
  let s: ServerProcess;
  let image: Buffer;
  // A random tiny model rarely stops early: 900 new tokens with 3 beams runs for seconds.
  const LONG = { num_beams: 3, max_new_tokens: 1000 };

  before(async () => {
    image = await png(320, 240, 40);
    s = await startServerProcess(['--model', await randomTiny(), '--devices', 'cpu', '--max-queue-per-device', '2', '--shutdown-grace-ms', '60000']);
    await s.serving;
  });
  after(async () => {
    if (s?.child.exitCode === null) await s.stop();
  });

  it('a running request stops at its deadline between decoder steps, and the worker serves the next request', async () => {
    const started = Date.now();
    await rejectsWith(call(s.client, 'Detect', { image: { data: image }, options: LONG }, { deadlineMs: 700 }), grpc.status.DEADLINE_EXCEEDED);
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } });
    assert.equal(r.meta!.generated_tokens, 5);
    assert.ok(Date.now() - started < 6000, 'the deadline stopped the long generation');
  });

  it('a cancelled running request stops, and a queued request whose deadline passes never runs', async () => {
    const md = new grpc.Metadata();
    const running = s.client.Detect({ image: { data: image }, options: LONG }, md, (err: grpc.ServiceError | null) => {
      void err;
    });
    await new Promise((r) => setTimeout(r, 400));
    const queued = call(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } }, { deadlineMs: 300 });
    await rejectsWith(queued, grpc.status.DEADLINE_EXCEEDED);
    running.cancel();
    const started = Date.now();
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } });
    assert.equal(r.meta!.generated_tokens, 5);
    // The cancelled 1000-token beam search would hold the worker for 10 s or more.
    assert.ok(Date.now() - started < 6000, 'the cancelled generation stopped promptly');
    const text = await scrape(s.metricsPort);
    assert.ok((sample(text, 'florence2_requests_total', { code: 'DEADLINE_EXCEEDED' }) ?? 0) >= 2);
    // The cancelling client never sees a status; the server records the request as CANCELLED.
    assert.equal(sample(text, 'florence2_requests_total', { task: 'od', code: 'CANCELLED' }), 1);
  });

  it('answers RESOURCE_EXHAUSTED at once beyond the in-flight and queue bounds', async () => {
    const calls = Array.from({ length: 6 }, () => call(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 40 } }).then(
      () => 'OK',
      (e: grpc.ServiceError) => grpc.status[e.code],
    ));
    const outcomes = await Promise.all(calls);
    assert.equal(outcomes.filter((o) => o === 'OK').length, 3, outcomes.join(','));
    assert.equal(outcomes.filter((o) => o === 'RESOURCE_EXHAUSTED').length, 3, outcomes.join(','));
  });

  it('SIGTERM: NOT_SERVING, new work refused, in-flight work completes, exit 0', async () => {
    const inflight = call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 120, num_beams: 3 } });
    await new Promise((r) => setTimeout(r, 300));
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await healthStatus(s), 'NOT_SERVING');
    await rejectsWith(call(s.client, 'Detect', { image: { data: image } }), grpc.status.UNAVAILABLE);
    const r = await inflight;
    assert.equal(r.meta!.generated_tokens, 120);
    assert.equal(await s.exited, 0);
  });
});
