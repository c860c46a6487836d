/**
 * Dynamic batching through a real server (child process, one CPU worker): requests that wait
 * together run as one worker batch, and each is still answered, stopped and failed on its own.
 *
 * To make requests wait together without depending on timing, a long "blocker" request holds the
 * only worker while the requests under test queue; cancelling the blocker frees the worker, and the
 * batcher takes everything that waits (in arrival order, same beams) as the next batch.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import {
  call,
  channelsReady,
  metricSample,
  scrapeMetrics,
  type ServerProcess,
  startServerProcess,
  waitForMetric,
} from '../helpers/server-process';
import { carTiny, randomTiny } from '../helpers/synth-models';
import type { RunResponse__Output } from 'florence2-client/generated/florence2/v1/RunResponse';

const png = (width: number, height: number, shade: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 200 } } })
    .png()
    .toBuffer();

/** A Run request (the oneof member and its message) that asks for raw text and scores. */
type Req = Record<string, object>;
// Greedy unless a request says otherwise (the synthetic models' own default is 3 beams).
const opts = (extra: object) => ({ include_raw_text: true, include_scores: true, num_beams: 1, ...extra });

/** What must not change when a request is batched: the decoded text (token ids), the parsed result and its scores. */
function answerOf(r: RunResponse__Output): unknown {
  const { meta, ...rest } = r[r.result!] as {
    meta: { raw_text: string; generated_tokens: number; image_width: number; image_height: number };
  };
  return { result: r.result, body: rest, raw: meta.raw_text, tokens: meta.generated_tokens, size: [meta.image_width, meta.image_height] };
}
const metaOf = (r: RunResponse__Output) =>
  (r[r.result!] as { meta: { batch: { requests: number; rows: number; decoder_steps: number }; timings: { total_ms: number } } }).meta;

const LONG = { num_beams: 3, max_new_tokens: 1000 };

/** Holds the only worker with a long request until `release()` cancels it. */
function blocker(s: ServerProcess, image: Buffer): { release(): void; done: Promise<void> } {
  let release = () => {};
  const done = new Promise<void>((resolve) => {
    const c = s.client.Detect({ image: { data: image }, options: LONG }, new grpc.Metadata(), () => resolve());
    release = () => c.cancel();
  });
  return { release, done };
}

function suite(name: string, model: () => Promise<string>): void {
  describe(`batching through the server (${name} tiny model)`, function () {
    let s: ServerProcess;
    let images: Buffer[];
    let blockImage: Buffer;

    before(async () => {
      images = await Promise.all([png(320, 240, 40), png(500, 375, 120), png(200, 300, 200)]);
      blockImage = await png(64, 64, 10);
      // A long blocker (1000 tokens × 3 beams) needs a random model; the scripted one stops at once.
      s = await startServerProcess([
        '--model',
        await model(),
        '--devices',
        'cpu',
        '--max-queue-per-device',
        '16',
        '--max-queue-delay-ms',
        '0',
        '--max-batch-rows',
        '32',
        '--test-hooks',
      ]);
      await s.serving;
      await channelsReady(s);
    });
    after(async () => {
      if (s?.child.exitCode === null) await s.stop();
    });

    const run = (r: Req, md?: Record<string, string>) => call<object, RunResponse__Output>(s.client, 'Run', r, { metadata: md });
    /** Sends `requests` while a blocker holds the worker, so they run as batches; resolves with their answers in order. */
    async function batched(requests: Req[], blockWith: Buffer): Promise<RunResponse__Output[]> {
      const b = blocker(s, blockWith);
      await waitForMetric(s, 'florence2_inflight_requests', { device: 'cpu:0' }, (v) => v === 1, 'the blocker to run');
      const answers = requests.map((r) => run(r));
      await waitForMetric(
        s,
        'florence2_queued_requests',
        { device: 'cpu:0' },
        (v) => v === requests.length,
        'every request to wait in the queue',
      );
      b.release();
      await b.done;
      return Promise.all(answers);
    }

    const mixed = (): Req[] => [
      { detect: { image: { data: images[0] }, options: opts({ max_new_tokens: 12 }) } },
      { caption: { image: { data: images[1] }, detail: 'CAPTION_DETAIL_DETAILED', options: opts({ max_new_tokens: 20 }) } },
      {
        phrase_grounding: {
          image: { data: images[2] },
          caption: 'a red car next to a tall tree and a dog',
          options: opts({ max_new_tokens: 7 }),
        },
      },
      {
        region: {
          image: { data: images[0] },
          region: { x1: 10, y1: 20, x2: 200, y2: 180 },
          task: 'REGION_TASK_DESCRIPTION',
          options: opts({ max_new_tokens: 15 }),
        },
      },
      { open_vocabulary: { image: { data: images[1] }, classes: ['car', 'traffic light'], options: opts({ max_new_tokens: 9 }) } },
      { ocr: { image: { data: images[2] }, with_regions: true, options: opts({ max_new_tokens: 25 }) } },
    ];
    const withBeams = (rs: Req[]): Req[] =>
      rs.map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([k, v]) => [k, { ...v, options: { ...(v as { options: object }).options, num_beams: 3 } }]),
        ),
      );

    for (const beams of [1, 3]) {
      it(`batching changes no answer: mixed tasks, prompts, image sizes and max_new_tokens, ${beams === 1 ? 'greedy' : '3 beams'}`, async () => {
        const requests = beams === 1 ? mixed() : withBeams(mixed());
        const alone: RunResponse__Output[] = [];
        for (const r of requests) alone.push(await run(r));
        for (const a of alone) assert.equal(metaOf(a).batch.requests, 1, 'sent one at a time: batches of one');
        const together = await batched(requests, blockImage);
        for (const t of together) assert.equal(metaOf(t).batch.requests, requests.length, 'all ran in one batch');
        together.forEach((t, i) => assert.deepEqual(answerOf(t), answerOf(alone[i]), `request ${i} (${Object.keys(requests[i])[0]})`));
      });
    }

    it('greedy and beam requests that wait together run in separate batches, in arrival order', async () => {
      const [g1, b1, g2] = [mixed()[0], withBeams(mixed())[1], mixed()[3]];
      const answers = await batched([g1, b1, g2], blockImage);
      assert.deepEqual(
        answers.map((a) => metaOf(a).batch.requests),
        [2, 1, 2],
      );
    });

    it('an early finisher is answered before its batch ends', async () => {
      const short: Req = { caption: { image: { data: images[0] }, options: { max_new_tokens: 2, num_beams: 1 } } };
      const long: Req = { caption: { image: { data: images[1] }, options: { max_new_tokens: 200, num_beams: 1 } } };
      const b = blocker(s, blockImage);
      await waitForMetric(s, 'florence2_inflight_requests', { device: 'cpu:0' }, (v) => v === 1, 'the blocker to run');
      const order: string[] = [];
      const pShort = run(short).then((r) => (order.push('short'), r));
      const pLong = run(long).then((r) => (order.push('long'), r));
      await waitForMetric(s, 'florence2_queued_requests', { device: 'cpu:0' }, (v) => v === 2, 'both to wait');
      b.release();
      const [rs, rl] = await Promise.all([pShort, pLong]);
      assert.equal(metaOf(rs).batch.requests, 2);
      assert.equal(metaOf(rl).batch.requests, 2);
      // The random model does not stop early on this image: the long one ran far past the short one's 2 steps.
      assert.ok(metaOf(rl).batch.decoder_steps > 20, `long ran ${metaOf(rl).batch.decoder_steps} steps`);
      assert.ok(metaOf(rs).batch.decoder_steps <= 2);
      assert.deepEqual(order, ['short', 'long'], 'the short one was answered first');
      assert.ok(metaOf(rs).timings.total_ms < metaOf(rl).timings.total_ms);
    });

    it('a burst forms batches bigger than 1 (the metrics show it)', async () => {
      const before = await scrapeMetrics(s);
      const sum0 = metricSample(before, 'florence2_batch_size_requests_sum', { device: 'cpu:0' }) ?? 0;
      const count0 = metricSample(before, 'florence2_batch_size_requests_count', { device: 'cpu:0' }) ?? 0;
      await batched([mixed()[0], mixed()[1], mixed()[2]], blockImage);
      const after = await scrapeMetrics(s);
      const sum = (metricSample(after, 'florence2_batch_size_requests_sum', { device: 'cpu:0' }) ?? 0) - sum0;
      const count = (metricSample(after, 'florence2_batch_size_requests_count', { device: 'cpu:0' }) ?? 0) - count0;
      // The blocker's batch of one, then one batch of three.
      assert.deepEqual([sum, count], [4, 2]);
      assert.ok((metricSample(after, 'florence2_batch_size_rows_sum', { device: 'cpu:0' }) ?? 0) > 0);
      assert.ok((metricSample(after, 'florence2_decoder_rows_per_step_count', { device: 'cpu:0' }) ?? 0) > 0);
    });

    it('a worker killed during a batch gives UNAVAILABLE to each of its requests, and the next request succeeds', async () => {
      const b = blocker(s, blockImage);
      await waitForMetric(s, 'florence2_inflight_requests', { device: 'cpu:0' }, (v) => v === 1, 'the blocker to run');
      const crash = run(mixed()[0], { 'x-florence2-test-crash': '1' }).then(
        () => 'OK',
        (e: grpc.ServiceError) => grpc.status[e.code],
      );
      const mates = [mixed()[1], mixed()[3]].map((r) =>
        run(r).then(
          () => 'OK',
          (e: grpc.ServiceError) => grpc.status[e.code],
        ),
      );
      await waitForMetric(s, 'florence2_queued_requests', { device: 'cpu:0' }, (v) => v === 3, 'the three to wait');
      b.release();
      assert.deepEqual(await Promise.all([crash, ...mates]), ['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
      await waitForMetric(s, 'florence2_workers', { device: 'cpu:0' }, (v) => v === 1, 'the replacement worker');
      const next = await run(mixed()[0]);
      assert.equal(next.result, 'detect');
    });
  });
}

suite('random', randomTiny);

describe('batching through the server (scripted tiny model)', function () {
  // The scripted decoder stops after its script, so no request can hold the worker: servers that only
  // send full batches (7 prompts: 7 rows greedy, 21 with 3 beams; a delay no test reaches) batch, one
  // with batching off answers alone.
  const batchedServers = new Map<number, ServerProcess>();
  let aloneServer: ServerProcess;
  let images: Buffer[];
  before(async () => {
    images = await Promise.all([png(320, 240, 40), png(500, 375, 120), png(200, 300, 200)]);
    const model = await carTiny();
    const full = (rows: number) =>
      startServerProcess([
        '--model',
        model,
        '--devices',
        'cpu',
        '--max-queue-per-device',
        '16',
        '--max-batch-rows',
        String(rows),
        '--max-queue-delay-ms',
        '60000',
      ]);
    let greedy: ServerProcess;
    let beams: ServerProcess;
    [greedy, beams, aloneServer] = await Promise.all([
      full(7),
      full(21),
      startServerProcess(['--model', model, '--devices', 'cpu', '--max-batch-rows', '1']),
    ]);
    batchedServers.set(1, greedy).set(3, beams);
    await Promise.all([greedy.serving, beams.serving, aloneServer.serving]);
  });
  after(async () => {
    await Promise.all([...batchedServers.values(), aloneServer].map(async (x) => (x?.child.exitCode === null ? x.stop() : null)));
  });

  for (const beams of [1, 3]) {
    it(`batching changes no answer, ${beams === 1 ? 'greedy' : '3 beams'}: the scripted boxes, text and scores`, async () => {
      const o = (extra: object) => opts({ ...extra, num_beams: beams });
      // 7 prompts in all (open vocabulary asks one per class).
      const requests: Req[] = [
        { detect: { image: { data: images[0] }, options: o({ max_new_tokens: 12 }) } },
        { caption: { image: { data: images[1] }, options: o({ max_new_tokens: 3 }) } },
        { phrase_grounding: { image: { data: images[2] }, caption: 'a car on a long road', options: o({}) } },
        { segment: { image: { data: images[0] }, referring_expression: 'the car', options: o({}) } },
        { open_vocabulary: { image: { data: images[1] }, classes: ['car', 'vehicle'], options: o({ max_new_tokens: 9 }) } },
        { ocr: { image: { data: images[2] }, options: o({ max_new_tokens: 4 }) } },
      ];
      const alone: RunResponse__Output[] = [];
      for (const r of requests) alone.push(await call<object, RunResponse__Output>(aloneServer.client, 'Run', r));
      const batchedServer = batchedServers.get(beams)!;
      const together = await Promise.all(requests.map((r) => call<object, RunResponse__Output>(batchedServer.client, 'Run', r)));
      for (const t of together) assert.equal(metaOf(t).batch.requests, requests.length, `one batch: ${JSON.stringify(metaOf(t).batch)}`);
      together.forEach((t, i) => assert.deepEqual(answerOf(t), answerOf(alone[i]), `request ${i} (${Object.keys(requests[i])[0]})`));
      // The script parses to the car box for detection.
      assert.deepEqual(
        (together[0].detect as { boxes: { label: string }[] }).boxes.map((b) => b.label),
        ['car'],
      );
    });
  }
});
