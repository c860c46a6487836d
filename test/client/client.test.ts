/**
 * The typed client against a real server child process with scripted tiny models: every task
 * method and `run`, model info and health, typed errors from the server (field names, deadline,
 * a worker crash), and the stream (ids matched, errors per id, bounded in-flight, early break).
 */
import { near, rejects } from '../helpers/assertions';
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { carTiny, tinyModel } from '../helpers/synth-models';
import {
  DeadlineExceededError,
  Florence2Client,
  InvalidArgumentError,
  type StreamItem,
  type StreamOutcome,
  TASK_TOKENS,
  UnavailableError,
} from 'florence2-client';

const CAR_BOX_640x480 = [34.24, 160.08, 597.44, 371.76];
const CAR_TEXT = 'car<loc_53><loc_333><loc_933><loc_774>';
/** Two OCR_WITH_REGION lines: text then the quadrilateral's eight location bins. */
export const OCR_LINES_SCRIPT =
  'HELLO<loc_100><loc_200><loc_500><loc_200><loc_500><loc_300><loc_100><loc_300>WORLD<loc_600><loc_700><loc_900><loc_700><loc_900><loc_800><loc_600><loc_800>';

const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 120, g: 90, b: 200 } } })
    .png()
    .toBuffer();

describe('Florence2Client against a server (scripted car model)', function () {
  let s: ServerProcess;
  let client: Florence2Client;
  let image: Buffer;
  let dir: string;
  let imagePath: string;

  before(async () => {
    image = await png(640, 480);
    dir = mkdtempSync(join(tmpdir(), 'florence2-client-'));
    imagePath = join(dir, 'car.png');
    writeFileSync(imagePath, image);
    s = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu', '--test-hooks']);
    client = new Florence2Client({ address: s.address, defaultDeadlineMs: 60_000, retryBaseMs: 50 });
    await s.serving;
  });
  after(async () => {
    client?.close();
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('health and model info', async () => {
    assert.equal(await client.health(), 'SERVING');
    assert.equal(await client.health('florence2.v1.Florence2'), 'SERVING');
    const info = await client.modelInfo();
    assert.deepEqual([...info.tasks].sort(), [...TASK_TOKENS].sort());
    assert.deepEqual(info.devices, [{ name: 'cpu:0', provider: 'cpu', workers: 1 }]);
    assert.equal(info.limits.maxImagePixels, 50_000_000);
    assert.equal(info.limits.maxMessageBytes, 50 * 1024 * 1024);
    assert.equal(info.defaultNumBeams, 3);
    assert.equal(info.nodeVersion, process.versions.node);
  });

  it('detect: the car box scaled to the image, scores and raw text when asked, from bytes or a path', async () => {
    const r = await client.detect(image, { includeScores: true, includeRawText: true });
    assert.equal(r.family, 'detect');
    assert.equal(r.boxes.length, 1);
    const b = r.boxes[0];
    near([b.x1, b.y1, b.x2, b.y2], CAR_BOX_640x480);
    assert.equal(b.label, 'car');
    assert.ok(b.score !== undefined && b.score > 0.99 && b.score <= 1);
    assert.equal(r.meta.rawText, `</s><s>${CAR_TEXT}</s>`);
    const plain = await client.detect(image);
    assert.equal('score' in plain.boxes[0], false, 'no score unless asked for (not 0)');
    assert.equal('rawText' in plain.meta, false, 'no raw text unless asked for');
    assert.deepEqual([r.meta.imageWidth, r.meta.imageHeight], [640, 480]);
    assert.equal(r.meta.generatedTokens, 7);
    assert.ok(r.meta.timings.totalMs > 0 && r.meta.timings.decodeMs > 0);
    assert.match(r.meta.requestId, /^[0-9a-f-]{36}$/);
    assert.equal(r.meta.device, 'cpu:0');

    const fromPath = await client.detect(imagePath, { kind: 'dense_region_captions' });
    assert.equal(fromPath.boxes[0].label, 'car');
    assert.equal(fromPath.boxes[0].score, undefined, 'no score unless asked');
    const proposals = await client.detect(new Uint8Array(image), { kind: 'region_proposals' });
    near([proposals.boxes[0].x1, proposals.boxes[0].y1, proposals.boxes[0].x2, proposals.boxes[0].y2], CAR_BOX_640x480);
  });

  it('caption at each detail level', async () => {
    for (const detail of ['brief', 'detailed', 'paragraph'] as const) {
      const r = await client.caption(image, { detail });
      assert.equal(r.family, 'caption');
      assert.equal(r.text, CAR_TEXT);
    }
  });

  it('detectOpenVocabulary labels boxes with the classes asked for', async () => {
    const r = await client.detectOpenVocabulary(image, ['automobile', 'truck']);
    assert.equal(r.family, 'open_vocabulary');
    assert.deepEqual(
      r.boxes.map((b) => b.label),
      ['automobile', 'truck'],
    );
    near([r.boxes[1].x1, r.boxes[1].y1, r.boxes[1].x2, r.boxes[1].y2], CAR_BOX_640x480);
    assert.deepEqual(r.instances, []);
    const one = await client.detectOpenVocabulary(image, 'vehicle');
    assert.deepEqual(
      one.boxes.map((b) => b.label),
      ['vehicle'],
    );
  });

  it('groundPhrases', async () => {
    const r = await client.groundPhrases(image, 'A car on a road.');
    assert.equal(r.family, 'phrase_grounding');
    assert.deepEqual(
      r.boxes.map((b) => b.label),
      ['car'],
    );
  });

  it('segment by referring expression and by region', async () => {
    const a = await client.segment(image, { referringExpression: 'the car' }, { includeScores: true });
    assert.equal(a.family, 'segment');
    assert.equal(a.instances.length, 1);
    near(a.instances[0].polygons[0], CAR_BOX_640x480);
    assert.ok((a.instances[0].score ?? 0) > 0.99);
    const b = await client.segment(image, { region: { x1: 10, y1: 10, x2: 300, y2: 200 } });
    assert.equal(b.instances.length, 1);
    assert.equal(b.instances[0].score, undefined);
    const c = await client.segment(image, { region: [10, 10, 300, 200] });
    assert.deepEqual(c.instances[0].polygons, b.instances[0].polygons);
  });

  it('ocr with and without regions', async () => {
    const plain = await client.ocr(image);
    assert.equal(plain.family, 'ocr');
    assert.equal(plain.text, CAR_TEXT);
    const lines = await client.ocr(image, { withRegions: true });
    assert.deepEqual(lines.lines, [], 'the car script has four locations, not a quadrilateral');
  });

  it('describeRegion for each region task, with an object or a tuple region', async () => {
    for (const task of ['category', 'description', 'ocr'] as const) {
      const r = await client.describeRegion(image, { x1: 33, y1: 160, x2: 597, y2: 371 }, task);
      assert.equal(r.family, 'region');
      assert.equal(r.text, CAR_TEXT);
    }
    assert.equal((await client.describeRegion(image, [33, 160, 597, 371])).text, CAR_TEXT);
  });

  it('run: every family through the generic RPC, typed by the request', async () => {
    const det = await client.run({ family: 'detect', image, kind: 'objects', options: { includeScores: true } });
    assert.equal(det.boxes[0].label, 'car'); // typed as DetectResult: no cast needed
    assert.ok((det.boxes[0].score ?? 0) > 0.99);
    assert.equal((await client.run({ family: 'detect', image })).boxes[0].score, undefined);
    const results = await Promise.all([
      client.run({ family: 'caption', image, detail: 'detailed' }),
      client.run({ family: 'open_vocabulary', image, classes: ['car'] }),
      client.run({ family: 'phrase_grounding', image: imagePath, caption: 'a car' }),
      client.run({ family: 'segment', image, referringExpression: 'car' }),
      client.run({ family: 'ocr', image, withRegions: false }),
      client.run({ family: 'region', image, region: [1, 1, 100, 100], task: 'description' }),
    ]);
    assert.deepEqual(
      results.map((r) => r.family),
      ['caption', 'open_vocabulary', 'phrase_grounding', 'segment', 'ocr', 'region'],
    );
    assert.equal(results[0].text, CAR_TEXT);
    assert.equal(results[1].boxes[0].label, 'car');
    assert.equal(results[2].boxes[0].label, 'car');
  });

  describe('typed errors', () => {
    it('InvalidArgumentError with the field the server named (not retried)', async () => {
      const junk = await rejects(client.detect(Buffer.from('GIF89a garbage')), InvalidArgumentError);
      assert.equal(junk.field, 'image.data');
      assert.equal(junk.attempts, 1);
      assert.match(junk.details, /not a decodable image/);
      const beams = await rejects(client.caption(image, { numBeams: 9 }), InvalidArgumentError);
      assert.equal(beams.field, 'options.num_beams');
      const run = await rejects(client.run({ family: 'detect', image, options: { maxNewTokens: 5000 } }), InvalidArgumentError);
      assert.equal(run.field, 'detect.options.max_new_tokens');
      const region = await rejects(client.describeRegion(image, [10, 10, 700, 100]), InvalidArgumentError);
      assert.equal(region.field, 'region');
      const classes = await rejects(client.detectOpenVocabulary(image, []), InvalidArgumentError);
      assert.equal(classes.field, 'classes');
    });

    it('DeadlineExceededError', async () => {
      const e = await rejects(client.detect(image, { deadlineMs: 1 }), DeadlineExceededError);
      assert.equal(e.attempts, 1);
    });

    it('UnavailableError when the worker dies mid-request (retries off), and the next call succeeds', async () => {
      const e = await rejects(client.detect(image, { metadata: { 'x-florence2-test-crash': '1' }, maxRetries: 0 }), UnavailableError);
      assert.equal(e.attempts, 1);
      assert.equal((await client.detect(image)).boxes[0].label, 'car');
    });

    it('a missing file rejects before any call', async () => {
      await assert.rejects(client.detect(join(dir, 'missing.png')), /ENOENT/);
    });
  });

  describe('stream', () => {
    const resultOf = (o: StreamOutcome | undefined) => {
      if (o === undefined) return assert.fail('no outcome');
      if (!o.ok) return assert.fail(`${o.id}: ${o.error.message}`);
      return o.result; // narrowed by ok
    };
    const errorOf = (o: StreamOutcome | undefined) => {
      if (o === undefined) return assert.fail('no outcome');
      if ('result' in o) return assert.fail(`${o.id} succeeded`);
      return o.error; // narrowed by 'result' in
    };
    const collect = async (it: AsyncIterable<StreamOutcome>) => {
      const out = new Map<string, StreamOutcome>();
      for await (const o of it) {
        assert.ok(!out.has(o.id), `one outcome per id (${o.id})`);
        out.set(o.id, o);
      }
      return out;
    };

    it('answers every id; bad requests get their own typed errors and the stream goes on', async () => {
      const items: StreamItem[] = [
        ...Array.from({ length: 5 }, (_, i) => ({ id: `d${i}`, request: { family: 'detect' as const, image } })),
        { id: 'cap', request: { family: 'caption', image: imagePath, detail: 'paragraph' } },
        { id: 'bad', request: { family: 'caption', image: Buffer.from('not an image') } },
        { id: 'missing', request: { family: 'ocr', image: join(dir, 'missing.png') } },
        { id: 'ov', request: { family: 'open_vocabulary', image, classes: ['car', 'bus'] } },
      ];
      const got = await collect(client.stream(items));
      assert.deepEqual([...got.keys()].sort(), ['bad', 'cap', 'd0', 'd1', 'd2', 'd3', 'd4', 'missing', 'ov']);
      for (let i = 0; i < 5; i++) {
        const r = resultOf(got.get(`d${i}`));
        assert.equal(r.family, 'detect');
        if (r.family === 'detect') near([r.boxes[0].x1, r.boxes[0].y1, r.boxes[0].x2, r.boxes[0].y2], CAR_BOX_640x480);
      }
      const cap = resultOf(got.get('cap'));
      assert.equal(cap.family === 'caption' && cap.text, CAR_TEXT);
      const ov = resultOf(got.get('ov'));
      assert.deepEqual(ov.family === 'open_vocabulary' && ov.boxes.map((b) => b.label), ['car', 'bus']);
      const bad = errorOf(got.get('bad'));
      assert.ok(bad instanceof InvalidArgumentError);
      assert.equal(bad.field, 'request.caption.image.data');
      const missing = errorOf(got.get('missing'));
      assert.ok(missing instanceof InvalidArgumentError);
      assert.equal(missing.field, 'request.ocr.image.data');
      assert.match(missing.details, /ENOENT/);
    });

    it('pulls lazily from an async generator with at most maxInFlight outstanding; rejects duplicate and empty ids', async () => {
      let pulled = 0;
      let maxAhead = 0;
      let consumed = 0;
      async function* gen(): AsyncGenerator<StreamItem> {
        for (let i = 0; i < 6; i++) {
          pulled++;
          maxAhead = Math.max(maxAhead, pulled - consumed);
          yield { id: `g${i}`, request: { family: 'detect', image } };
        }
        yield { id: 'g0', request: { family: 'detect', image } };
        yield { id: '', request: { family: 'detect', image } };
      }
      const ids: string[] = [];
      const errors: string[] = [];
      for await (const o of client.stream(gen(), { maxInFlight: 2 })) {
        consumed++;
        if ('error' in o) errors.push(`${o.id}:${o.error.codeName}`);
        else ids.push(o.id);
      }
      assert.deepEqual([...new Set(ids)].sort(), ['g0', 'g1', 'g2', 'g3', 'g4', 'g5']);
      assert.equal(ids.length + errors.length, 8, 'one outcome per item');
      assert.ok(maxAhead <= 3, `pulled at most maxInFlight (+1 being sent) ahead of consumption, got ${maxAhead}`);
      // The duplicate g0 is accepted when the first g0 was already answered, refused if still in flight.
      assert.ok(errors.includes(':INVALID_ARGUMENT'), errors.join(','));
    });

    it('an empty request iterable ends the stream with no outcomes', async () => {
      assert.equal((await collect(client.stream([]))).size, 0);
    });

    it('breaking out early cancels the call, and the client keeps working', async () => {
      const many = Array.from({ length: 20 }, (_, i) => ({ id: `m${i}`, request: { family: 'detect' as const, image } }));
      let n = 0;
      for await (const o of client.stream(many, { maxInFlight: 2 })) {
        assert.ok(o.ok);
        if (++n === 2) break;
      }
      assert.equal(n, 2);
      assert.equal((await client.detect(image)).boxes[0].label, 'car');
    });
  });
});

describe('Florence2Client against a server (scripted OCR lines model)', function () {
  let s: ServerProcess;
  let client: Florence2Client;

  before(async () => {
    s = await startServerProcess([
      '--model',
      await tinyModel({ name: 'tiny-ocr-lines', script: OCR_LINES_SCRIPT, seed: 5 }),
      '--devices',
      'cpu',
    ]);
    client = new Florence2Client({ address: s.address, defaultDeadlineMs: 60_000 });
    await s.serving;
  });
  after(async () => {
    client?.close();
    await s?.stop();
  });

  it('ocr with regions returns text lines with quadrilaterals scaled to the image', async () => {
    const r = await client.ocr(await png(640, 480), { withRegions: true, includeScores: true });
    assert.deepEqual(
      r.lines.map((l) => l.text),
      ['HELLO', 'WORLD'],
    );
    const px = (bin: number, extent: number) => ((bin + 0.5) / 1000) * extent;
    near(r.lines[0].points, [
      px(100, 640),
      px(200, 480),
      px(500, 640),
      px(200, 480),
      px(500, 640),
      px(300, 480),
      px(100, 640),
      px(300, 480),
    ]);
    assert.ok(r.lines.every((l) => l.score !== undefined && l.score > 0.99));
  });
});
