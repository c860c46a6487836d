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
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import {
  call,
  channelsReady,
  findLogs,
  healthStatus,
  metricSample as sample,
  scrapeMetrics,
  type ServerProcess,
  startServerProcess,
  waitForLog,
  waitForMetric,
} from '../helpers/server-process';
import { waitFor } from '../helpers/wait';
import { carTiny, randomTiny } from '../helpers/synth-models';
import type { DetectResponse__Output } from 'florence2-client/generated/florence2/v1/DetectResponse';
import type { CaptionResponse__Output } from 'florence2-client/generated/florence2/v1/CaptionResponse';
import type { OpenVocabularyResponse__Output } from 'florence2-client/generated/florence2/v1/OpenVocabularyResponse';
import type { SegmentResponse__Output } from 'florence2-client/generated/florence2/v1/SegmentResponse';
import type { OcrResponse__Output } from 'florence2-client/generated/florence2/v1/OcrResponse';
import type { RegionResponse__Output } from 'florence2-client/generated/florence2/v1/RegionResponse';
import type { RunResponse__Output } from 'florence2-client/generated/florence2/v1/RunResponse';
import type { ModelInfo__Output } from 'florence2-client/generated/florence2/v1/ModelInfo';
import type { StreamResponse__Output } from 'florence2-client/generated/florence2/v1/StreamResponse';

/** The buf CLI of the @bufbuild/buf devDependency. */
const BUF = resolve(__dirname, '../../node_modules/.bin/buf');

const CAR_BOX_640x480 = [34.24, 160.08, 597.44, 371.76];

const png = (width: number, height: number, shade = 120) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 200 } } })
    .png()
    .toBuffer();

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

/** The decoder steps a worker ran before it stopped, from its `generation stopped after N decoder steps`. */
function decoderSteps(message: unknown): number {
  const m = /generation stopped after (\d+) decoder steps/.exec(String(message));
  assert.ok(m, `not a stop inside the generation loop: ${String(message)}`);
  return Number(m[1]);
}

describe('gRPC server (scripted model, two CPU pools)', function () {
  let s: ServerProcess;
  let image: Buffer;

  let healthWhileStarting: { status: string; servingLogged: boolean };
  before(async () => {
    image = await png(640, 480);
    // No per-client cap: the slow-reader Stream test has 300 requests in flight from one client.
    s = await startServerProcess([
      '--model',
      await carTiny(),
      '--devices',
      'cpu:0,cpu:1',
      '--max-image-pixels',
      '4000000',
      '--max-inflight-per-client',
      '0',
      '--test-hooks',
    ]);
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
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', {
      image: { data: image },
      options: { include_scores: true, include_raw_text: true },
    });
    assert.equal(r.boxes.length, 1);
    near([r.boxes[0].x1, r.boxes[0].y1, r.boxes[0].x2, r.boxes[0].y2], CAR_BOX_640x480);
    assert.equal(r.boxes[0].label, 'car');
    const score = r.boxes[0].score;
    assert.ok(score !== undefined && score > 0.99 && score <= 1, `score ${score}`);
    assert.equal(r.meta!.raw_text, '</s><s>car<loc_53><loc_333><loc_933><loc_774></s>');
    assert.equal(r.meta!.generated_tokens, 7);
    assert.equal(r.meta!.prompt_tokens, 13);
    assert.deepEqual([r.meta!.image_width, r.meta!.image_height], [640, 480]);
    assert.ok(r.meta!.timings!.total_ms >= r.meta!.timings!.decode_ms && r.meta!.timings!.decode_ms > 0);
    assert.match(r.meta!.request_id, /^[0-9a-f-]{36}$/);
  });

  it('every typed RPC answers with its typed result', async () => {
    const cap = await call<object, CaptionResponse__Output>(s.client, 'Caption', {
      image: { data: image },
      detail: 'CAPTION_DETAIL_PARAGRAPH',
    });
    assert.equal(cap.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const ov = await call<object, OpenVocabularyResponse__Output>(s.client, 'DetectOpenVocabulary', {
      image: { data: image },
      classes: ['automobile', 'truck'],
    });
    assert.deepEqual(
      ov.boxes.map((b) => b.label),
      ['automobile', 'truck'],
    );
    near([ov.boxes[1].x1, ov.boxes[1].y1, ov.boxes[1].x2, ov.boxes[1].y2], CAR_BOX_640x480);
    const pg = await call<object, DetectResponse__Output>(s.client, 'GroundPhrases', {
      image: { data: image },
      caption: 'A car on a road.',
    });
    assert.deepEqual(
      pg.boxes.map((b) => b.label),
      ['car'],
    );
    const seg = await call<object, SegmentResponse__Output>(s.client, 'Segment', {
      image: { data: image },
      referring_expression: 'the car',
    });
    assert.equal(seg.instances.length, 1);
    near(seg.instances[0].polygons[0].coords, CAR_BOX_640x480);
    const seg2 = await call<object, SegmentResponse__Output>(s.client, 'Segment', {
      image: { data: image },
      region: { x1: 10, y1: 10, x2: 300, y2: 200 },
    });
    assert.equal(seg2.instances.length, 1);
    const ocr = await call<object, OcrResponse__Output>(s.client, 'Ocr', { image: { data: image } });
    assert.equal(ocr.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const ocrr = await call<object, OcrResponse__Output>(s.client, 'Ocr', { image: { data: image }, with_regions: true });
    assert.deepEqual(ocrr.lines, []);
    const reg = await call<object, RegionResponse__Output>(s.client, 'DescribeRegion', {
      image: { data: image },
      region: { x1: 33, y1: 160, x2: 597, y2: 371 },
      task: 'REGION_TASK_DESCRIPTION',
    });
    assert.equal(reg.text, 'car<loc_53><loc_333><loc_933><loc_774>');
    const run = await call<object, RunResponse__Output>(s.client, 'Run', {
      detect: { image: { data: image }, kind: 'DETECT_KIND_DENSE_REGION_CAPTIONS' },
    });
    assert.equal(run.result, 'detect');
    assert.equal(run.detect!.boxes[0].label, 'car');
  });

  it('GetModelInfo describes the model, devices, limits and versions', async () => {
    const info = await call<object, ModelInfo__Output>(s.client, 'GetModelInfo', {});
    assert.deepEqual(
      info.devices.map((d) => d.name),
      ['cpu:0', 'cpu:1'],
    );
    assert.equal(info.files.decoder_model_merged, 'decoder_model_merged.onnx');
    assert.equal(Number(info.limits!.max_image_pixels), 4000000);
    assert.equal(info.default_num_beams, 3);
    assert.equal(info.tasks.length, 15);
    assert.equal(info.node_version, process.versions.node);
    assert.match(info.onnxruntime_version, /^1\.\d+/);
  });

  it('server reflection lists the Florence2 and health services and serves their descriptors', async () => {
    const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = grpc.loadPackageDefinition(
      protoLoader.loadSync(reflectionProto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }),
    ) as any;
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

  it('buf curl, knowing only what reflection serves, lists the methods and calls Detect', () => {
    // buf is a Go client: it rejects protobufjs-built descriptors (map entries named `Files`, not
    // `FilesEntry`), so this passes only with protoc-equivalent descriptors.
    const buf = (args: string[], stdin?: string) => {
      const r = spawnSync(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args], {
        encoding: 'utf8',
        input: stdin,
        timeout: 60_000,
      });
      assert.equal(r.status, 0, `buf curl ${args.join(' ')} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const base = `http://${s.address}`;
    const methods = buf(['--list-methods', base]).trim().split('\n').sort();
    assert.ok(methods.includes('florence2.v1.Florence2/Detect'), methods.join('\n'));
    assert.ok(methods.includes('florence2.v1.Florence2/GetModelInfo'), methods.join('\n'));
    const out = JSON.parse(
      buf(['--data', '@-', `${base}/florence2.v1.Florence2/Detect`], JSON.stringify({ image: { data: image.toString('base64') } })),
    );
    assert.equal(out.boxes.length, 1);
    assert.equal(out.boxes[0].label, 'car');
    near([out.boxes[0].x1, out.boxes[0].y1, out.boxes[0].x2, out.boxes[0].y2], CAR_BOX_640x480);
    assert.equal(out.meta.imageWidth, 640);
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
    // Resume only once the server has answered all 300 (it logs each failure) while nothing was read.
    await waitFor(() => findLogs(s, { msg: 'request failed', requestId: /:x\d+$/ }).length >= 300, {
      what: 'the server to answer all 300 stream requests',
    });
    assert.equal(ids.length, 0, 'nothing was read while paused');
    stream.resume();
    await done;
    assert.equal(ids.length, 300);
    assert.equal(new Set(ids).size, 300);
  });

  it('both device pools receive work', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } })),
    );
    const devices = new Set(results.map((r) => r.meta!.device));
    assert.deepEqual([...devices].sort(), ['cpu:0', 'cpu:1']);
  });

  describe('INVALID_ARGUMENT names the field and the limit', () => {
    it('missing or undecodable image', async () => {
      await rejectsWith(call(s.client, 'Detect', {}), grpc.status.INVALID_ARGUMENT, /`image\.data` is required/);
      await rejectsWith(
        call(s.client, 'Detect', { image: { data: Buffer.from('GIF89a garbage') } }),
        grpc.status.INVALID_ARGUMENT,
        /`image\.data` is not a decodable image/,
      );
    });
    it('more pixels than the limit, refused from the header', async () => {
      const big = await sharp({ create: { width: 2100, height: 2000, channels: 3, background: 'white' } })
        .png()
        .toBuffer();
      await rejectsWith(
        call(s.client, 'Detect', { image: { data: big } }),
        grpc.status.INVALID_ARGUMENT,
        /`image\.data` is 2100x2000 = 4200000 pixels; the limit is 4000000/,
      );
    });
    it('text missing where required', async () => {
      await rejectsWith(
        call(s.client, 'GroundPhrases', { image: { data: image }, caption: '  ' }),
        grpc.status.INVALID_ARGUMENT,
        /`caption` is required/,
      );
      await rejectsWith(
        call(s.client, 'DetectOpenVocabulary', { image: { data: image }, classes: [] }),
        grpc.status.INVALID_ARGUMENT,
        /`classes`/,
      );
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
      await rejectsWith(
        call(s.client, 'Detect', { image: { data: image }, options: { num_beams: 9 } }),
        grpc.status.INVALID_ARGUMENT,
        /`options\.num_beams` must be <= 8\. Given: 9/,
      );
      await rejectsWith(
        call(s.client, 'Run', { detect: { image: { data: image }, options: { max_new_tokens: 5000 } } }),
        grpc.status.INVALID_ARGUMENT,
        /`detect\.options\.max_new_tokens` must be <= 1024/,
      );
    });
  });

  it('a worker killed on purpose is replaced: its request gets UNAVAILABLE, the next succeeds, a restart is counted', async () => {
    await rejectsWith(
      call(s.client, 'Detect', { image: { data: image } }, { metadata: { 'x-florence2-test-crash': '1' } }),
      grpc.status.UNAVAILABLE,
    );
    for (let i = 0; i < 4; i++) {
      const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } });
      assert.equal(r.boxes[0].label, 'car');
    }
    const text = await scrapeMetrics(s);
    const restarts = ['cpu:0', 'cpu:1'].map((d) => sample(text, 'florence2_worker_restarts_total', { device: d }) ?? 0);
    assert.equal(restarts[0] + restarts[1], 1);
  });

  it('serves Prometheus metrics with plausible values', async () => {
    const text = await scrapeMetrics(s);
    assert.ok((sample(text, 'florence2_requests_total', { task: 'od', code: 'OK' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_requests_total', { code: 'INVALID_ARGUMENT' }) ?? 0) >= 1);
    assert.ok((sample(text, 'florence2_request_duration_seconds_count', { task: 'od' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_stage_duration_seconds_count', { stage: 'decode' }) ?? 0) >= 10);
    assert.ok((sample(text, 'florence2_generated_tokens_total', { task: 'od' }) ?? 0) >= 70);
    for (const family of [
      'florence2_queue_wait_seconds_bucket',
      'florence2_inflight_requests',
      'florence2_queued_requests',
      'florence2_worker_busy_ratio',
      'florence2_model_info',
      'process_cpu_user_seconds_total',
    ]) {
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
    s = await startServerProcess([
      '--model',
      await randomTiny(),
      '--devices',
      'cpu',
      '--max-queue-per-device',
      '2',
      '--shutdown-grace-ms',
      '60000',
    ]);
    await s.serving;
    // Connected now, so no test's shutdown window pays for connection setup.
    await channelsReady(s);
  });
  after(async () => {
    if (s?.child.exitCode === null) await s.stop();
  });

  /** Waits until `n` requests run on the only worker (the scheduler's in-flight gauge). */
  const inFlight = (n: number, what: string) => waitForMetric(s, 'florence2_inflight_requests', { device: 'cpu:0' }, (v) => v === n, what);

  it('a running request stops at its deadline between decoder steps, and the worker serves the next request', async () => {
    const from = s.logs.length;
    // A deadline only the server enforces (see `call`), so it is the server's deadline that stops the
    // request, never a client cancel that happened to arrive first. 1.5 s: far less than LONG runs
    // (about 15 s unloaded).
    await rejectsWith(
      call(s.client, 'Detect', { image: { data: image }, options: LONG }, { serverDeadlineMs: 1500 }),
      grpc.status.DEADLINE_EXCEEDED,
    );
    // Answered at the deadline; then the worker confirms that it dropped the request mid-generation.
    await waitForLog(s, { msg: 'request failed', code: 'DEADLINE_EXCEEDED' }, { from });
    const stopped = await waitForLog(s, { msg: 'running request stopped in its batch' }, { from });
    assert.match(String(stopped.message), /^deadline exceeded; /);
    assert.ok(decoderSteps(stopped.message) < LONG.max_new_tokens, String(stopped.message));
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } });
    assert.equal(r.meta!.generated_tokens, 5);
  });

  it('a cancelled running request stops, and a queued request whose deadline passes never runs', async () => {
    const count = (text: string, code: string) => sample(text, 'florence2_requests_total', { task: 'od', code }) ?? 0;
    const before = await scrapeMetrics(s);
    const from = s.logs.length;
    const running = s.client.Detect({ image: { data: image }, options: LONG }, new grpc.Metadata(), (err: grpc.ServiceError | null) => {
      void err;
    });
    await inFlight(1, 'the long request to run on the worker');
    // Behind the running request it can only wait in the queue, and its (server-enforced) deadline passes there.
    await rejectsWith(
      call(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } }, { serverDeadlineMs: 1500 }),
      grpc.status.DEADLINE_EXCEEDED,
    );
    const expired = await waitForLog(s, { msg: 'request failed', code: 'DEADLINE_EXCEEDED' }, { from });
    assert.match(String(expired.message), /the deadline passed after \d+ ms in the queue/, 'expired in the queue, never ran');
    running.cancel();
    // The cancelling client never sees a status; the server records the request as CANCELLED, stopped mid-generation.
    await waitForLog(s, { msg: 'request failed', code: 'CANCELLED' }, { from });
    const cancelled = await waitForLog(s, { msg: 'running request stopped in its batch' }, { from });
    assert.match(String(cancelled.message), /^cancelled by the client; /);
    assert.ok(decoderSteps(cancelled.message) < LONG.max_new_tokens, String(cancelled.message));
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } });
    assert.equal(r.meta!.generated_tokens, 5);
    // Both outcomes were logged, hence recorded: exactly one of each in this test.
    const after = await scrapeMetrics(s);
    assert.equal(count(after, 'DEADLINE_EXCEEDED') - count(before, 'DEADLINE_EXCEEDED'), 1);
    assert.equal(count(after, 'CANCELLED') - count(before, 'CANCELLED'), 1);
  });

  it('answers RESOURCE_EXHAUSTED at once beyond the in-flight and queue bounds', async () => {
    // A long request holds the only worker, so 1 running + 2 queued stay full however slowly the rest arrive.
    const blocker = s.client.Detect({ image: { data: image }, options: LONG }, new grpc.Metadata(), (err: grpc.ServiceError | null) => {
      void err;
    });
    await inFlight(1, 'the long request to run on the worker');
    const answered: string[] = [];
    const calls = Array.from({ length: 5 }, () =>
      call(s.client, 'Detect', { image: { data: image }, options: { max_new_tokens: 5 } })
        .then(
          () => 'OK',
          (e: grpc.ServiceError) => grpc.status[e.code],
        )
        .then((o) => (answered.push(o), o)),
    );
    // The three beyond the bounds are answered while the worker is still busy: they did not wait for room.
    await waitFor(() => answered.length >= 3, { what: 'three of the five requests to be answered' });
    assert.deepEqual(answered, ['RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED']);
    const text = await scrapeMetrics(s);
    assert.deepEqual(
      [sample(text, 'florence2_inflight_requests', { device: 'cpu:0' }), sample(text, 'florence2_queued_requests', { device: 'cpu:0' })],
      [1, 2],
    );
    blocker.cancel();
    const outcomes = await Promise.all(calls);
    assert.equal(outcomes.filter((o) => o === 'OK').length, 2, outcomes.join(','));
    assert.equal(outcomes.filter((o) => o === 'RESOURCE_EXHAUSTED').length, 3, outcomes.join(','));
  });

  it('SIGTERM: NOT_SERVING to health watchers, GOAWAY and no new connection, so no new call reaches it; in-flight work completes, exit 0', async () => {
    // About 1.5 s of work unloaded, some 30 times what the checks between SIGTERM and its end take.
    const inflight = call<object, DetectResponse__Output>(s.client, 'Detect', {
      image: { data: image },
      options: { max_new_tokens: 300, num_beams: 3 },
    });
    await inFlight(1, 'the request to run on the worker before SIGTERM');
    const statuses: string[] = [];
    const watch = s.health.Watch({ service: '' }) as grpc.ClientReadableStream<{ status: string }>;
    watch.on('data', (m: { status: string }) => statuses.push(m.status));
    watch.on('error', () => {}); // its cancel below
    await waitFor(() => statuses.includes('SERVING'), { what: 'the health watcher to see SERVING' });
    const from = s.logs.length;
    s.child.kill('SIGTERM');
    // A watcher (such as a client-side health check) hears of the drain on its open call.
    await waitFor(() => statuses.includes('NOT_SERVING'), { what: 'the health watcher to see NOT_SERVING' });
    watch.cancel();
    // The client's connection got GOAWAY and the port takes no new one: a balancing client sends its
    // next calls to other servers at once instead of having them refused here one by one.
    await rejectsWith(call(s.client, 'Detect', { image: { data: image } }), grpc.status.UNAVAILABLE);
    await rejectsWith(healthStatus(s), grpc.status.UNAVAILABLE);
    const r = await inflight;
    assert.equal(r.meta!.generated_tokens, 300);
    assert.equal(await s.exited, 0);
    assert.deepEqual(findLogs(s, { msg: 'request failed' }, from), [], 'no call reached the draining server');
    assert.deepEqual(findLogs(s, { msg: 'transport closed forcibly' }, from), [], 'the in-flight call ended, then the transport closed');
  });
});
