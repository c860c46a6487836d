/**
 * The HTTP/JSON API end to end (`--http-port`): every unary RPC answers as its gRPC twin, in the
 * proto3 JSON mapping and in the shape /openapi.json describes; errors are HTTP statuses with a JSON
 * body naming the field; oversized bodies are refused before they are read; tokens, per-client
 * bounds, deadlines and cancels work as on gRPC.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { Validator } from '@seriousme/openapi-schema-validator';
import sharp from 'sharp';
import {
  call,
  scrapeMetrics,
  metricSample,
  type ServerProcess,
  startServerProcess,
  waitForLog,
  waitForMetric,
} from '../helpers/server-process';
import { carTiny, randomTiny } from '../helpers/synth-models';
import { openApiText } from '../../tools/gen/openapi';

const png = (width: number, height: number, shade = 120) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 200 } } })
    .png()
    .toBuffer();

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One HTTP request on loopback; `body` as given (a string is sent as is, anything else as JSON). */
function request(
  port: number,
  path: string,
  options: { method?: string; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Answer> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'POST',
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }),
          ...options.headers,
        },
        signal: options.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** A grpc-js (keepCase) response as proto3 JSON names it, without what differs per call. */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith('_')) continue; // grpc-js's discriminator of a proto3 optional field (`_score`)
    const key = camel(k);
    // Per call: timings, ids, the batch it ran in, and grpc-js's oneof discriminator.
    if (['timings', 'requestId', 'batch', 'device', 'result', 'task'].includes(key) && typeof v !== 'number') continue;
    out[key] = comparable(v);
  }
  return out;
}

/** The same, for a JSON answer. */
const comparableJson = (value: unknown) => comparable(value);

describe('HTTP/JSON API (scripted model)', function () {
  let s: ServerProcess;
  let image: Buffer;
  let b64: string;
  let port: number;

  before(async () => {
    image = await png(640, 480);
    b64 = image.toString('base64');
    s = await startServerProcess([
      '--model',
      await carTiny(),
      '--http-port',
      '0',
      '--max-image-pixels',
      '4000000',
      '--http-max-body-bytes',
      String(2 << 20),
      '--max-classes',
      '4',
    ]);
    await s.serving;
    port = s.httpPort!;
    assert.ok(port > 0, 'the listening log names the HTTP port');
  });
  after(async () => {
    if (s?.child.exitCode === null) await s.stop();
  });

  const region = { x1: 10, y1: 20, x2: 300, y2: 200 };
  /** Every unary RPC: its JSON body and the same request as grpc-js (keepCase) takes it. */
  const cases = () => {
    const img = { data: b64 };
    const grpcImg = { data: image };
    return [
      {
        rpc: 'Caption',
        json: { image: img, detail: 'CAPTION_DETAIL_DETAILED' },
        grpc: { image: grpcImg, detail: 'CAPTION_DETAIL_DETAILED' },
      },
      {
        rpc: 'Detect',
        json: { image: img, options: { includeScores: true } },
        grpc: { image: grpcImg, options: { include_scores: true } },
      },
      { rpc: 'DetectOpenVocabulary', json: { image: img, classes: ['car', 'wheel'] }, grpc: { image: grpcImg, classes: ['car', 'wheel'] } },
      { rpc: 'GroundPhrases', json: { image: img, caption: 'a car' }, grpc: { image: grpcImg, caption: 'a car' } },
      { rpc: 'Segment', json: { image: img, region }, grpc: { image: grpcImg, region } },
      { rpc: 'Ocr', json: { image: img, withRegions: true }, grpc: { image: grpcImg, with_regions: true } },
      {
        rpc: 'DescribeRegion',
        json: { image: img, region, task: 'REGION_TASK_DESCRIPTION' },
        grpc: { image: grpcImg, region, task: 'REGION_TASK_DESCRIPTION' },
      },
      // Proto field names are accepted as well as lowerCamelCase.
      {
        rpc: 'Run',
        json: { phrase_grounding: { image: img, caption: 'a car' } },
        grpc: { phrase_grounding: { image: grpcImg, caption: 'a car' } },
      },
      { rpc: 'GetModelInfo', json: {}, grpc: {} },
    ];
  };

  it('answers every unary RPC as gRPC does, in proto3 JSON that /openapi.json describes', async () => {
    const doc = (await request(port, '/openapi.json', { method: 'GET' })).json;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    // protobuf's own integer widths (the document names them; JSON Schema has no such formats).
    ajv.addFormat('uint32', true).addFormat('uint64', true);
    ajv.addSchema(doc, 'openapi.json');
    const seen: string[] = [];
    for (const c of cases()) {
      const r = await request(port, `/v1/${c.rpc}`, { body: c.json });
      assert.equal(r.status, 200, `${c.rpc}: ${r.text}`);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const schema = doc.paths[`/v1/${c.rpc}`].post.responses['200'].content['application/json'].schema.$ref.replace(
        '#/components/schemas/',
        '',
      );
      const valid = ajv.validate({ $ref: `openapi.json#/components/schemas/${schema}` }, r.json);
      assert.ok(valid, `${c.rpc}: ${ajv.errorsText()}`);
      const twin = await call<object, object>(s.client, c.rpc, c.grpc);
      assert.deepEqual(comparableJson(r.json), comparable(twin), c.rpc);
      seen.push(c.rpc);
    }
    // Exactly the unary RPCs of the document.
    assert.deepEqual(
      seen.sort(),
      Object.keys(doc.paths)
        .filter((p) => p.startsWith('/v1/'))
        .map((p) => p.slice(4))
        .sort(),
    );
  });

  it('writes proto3 JSON: lowerCamelCase, defaults included, a score only when asked, 64-bit integers as strings', async () => {
    const r = await request(port, '/v1/Detect', { body: { image: { data: b64 } } });
    const box = r.json.boxes[0];
    assert.equal(box.label, 'car');
    assert.deepEqual(
      [box.x1, box.y1, box.x2, box.y2].map((v: number) => Math.round(v * 100) / 100),
      [34.24, 160.08, 597.44, 371.76],
    );
    assert.equal('score' in box, false, 'a score not asked for is absent (the field has presence), not 0');
    assert.equal(r.json.meta.imageWidth, 640);
    const scored = await request(port, '/v1/Detect', { body: { image: { data: b64 }, options: { includeScores: true } } });
    const score: unknown = scored.json.boxes[0].score;
    assert.ok(typeof score === 'number' && score > 0.99 && score <= 1, `asked for, the score is there: ${String(score)}`);
    const info = (await request(port, '/v1/GetModelInfo', { body: '' })).json;
    assert.equal(typeof info.limits.maxImagePixels, 'string');
    assert.equal(info.limits.maxImagePixels, '4000000');
  });

  it('INVALID_ARGUMENT is 400 with the field, from the validator and from the JSON mapping', async () => {
    const expect400 = async (body: unknown, field: string, message: RegExp, rpc = 'Detect') => {
      const r = await request(port, `/v1/${rpc}`, { body });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
      assert.equal(r.json.error.code, 400);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, message);
    };
    await expect400({ image: { data: b64 }, options: { numBeams: 99 } }, 'options.num_beams', /must be <= \d+\. Given: 99/);
    await expect400({}, 'image.data', /is required/);
    await expect400({ image: { data: '***' } }, 'image.data', /base64/);
    await expect400({ image: { data: b64 }, colour: 'red' }, 'colour', /not a field of florence2\.v1\.DetectRequest/);
    await expect400({ detect: { image: { data: b64 }, options: { num_beams: 'three' } } }, 'detect.options.num_beams', /uint32/, 'Run');
    await expect400({ image: { data: b64 }, kind: 'DETECT_KIND_CATS' }, 'kind', /DETECT_KIND_CATS/);
    await expect400('{"image": ', 'body', /not JSON/);
    await expect400('[1, 2]', 'body', /expected a JSON object/);
    await expect400({ image: { data: b64 }, classes: ['a', 'b', 'c', 'd', 'e'] }, 'classes', /more than 4 entries/, 'DetectOpenVocabulary');
  });

  it('refuses what is not the API: 404, 405, 415, a bad grpc-timeout', async () => {
    const notFound = await request(port, '/v1/Nope', { body: {} });
    assert.equal(notFound.status, 404);
    assert.equal(notFound.json.error.status, 'NOT_FOUND');
    const stream = await request(port, '/v1/Stream', { body: {} });
    assert.equal(stream.status, 404);
    assert.match(stream.json.error.message, /gRPC stream/);
    const get = await request(port, '/v1/Detect', { method: 'GET' });
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    const form = await request(port, '/v1/Detect', { body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 415);
    assert.match(form.json.error.message, /application\/json/);
    const timeout = await request(port, '/v1/Detect', { body: { image: { data: b64 } }, headers: { 'grpc-timeout': 'soon' } });
    assert.equal(timeout.status, 400);
    assert.equal(timeout.json.error.field, 'grpc-timeout');
  });

  it('refuses an oversized body with 413 before reading it: a declared length, and a chunked body as it passes the limit', async () => {
    const before = metricSample(await scrapeMetrics(s), 'florence2_rejected_messages_total', { reason: 'size' }) ?? 0;
    // Declared: the answer comes while not one byte of the body has been sent.
    const declared = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/Detect',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': String(1 << 30), expect: '100-continue' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('continue', () => reject(new Error('the server asked for the body')));
      req.on('error', () => {});
      req.flushHeaders();
    });
    assert.equal(declared, 413);
    // Chunked: keep sending until the server answers; it answers once the limit (2 MiB) is passed.
    const chunk = Buffer.alloc(64 << 10, 0x41);
    const chunked = await new Promise<{ status: number; sent: number }>((resolve) => {
      let sent = 0;
      let answered = false;
      const req = http.request(
        { host: '127.0.0.1', port, path: '/v1/Detect', method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          answered = true;
          res.resume();
          resolve({ status: res.statusCode ?? 0, sent });
          req.destroy();
        },
      );
      req.on('error', () => {
        if (!answered) resolve({ status: -1, sent });
      });
      const pump = () => {
        while (!answered && sent < 64 << 20) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
      };
      req.write('{"image":{"data":"');
      pump();
    });
    assert.equal(chunked.status, 413);
    assert.ok(chunked.sent < 32 << 20, `the answer came after ${chunked.sent} bytes, long before the 64 MiB the client had`);
    const after = metricSample(await scrapeMetrics(s), 'florence2_rejected_messages_total', { reason: 'size' }) ?? 0;
    assert.ok(after - before >= 2, `size refusals counted: ${before} → ${after}`);
  });

  it('serves /openapi.json, a valid OpenAPI 3.1 document equal to what proto/ generates', async () => {
    const r = await request(port, '/openapi.json', { method: 'GET' });
    assert.equal(r.status, 200);
    assert.equal(r.text, openApiText(), 'the served document is the committed one, and the committed one what the proto gives');
    const result = await new Validator().validate(r.json);
    assert.ok(result.valid, JSON.stringify(result.errors));
    assert.equal(r.json.openapi, '3.1.0');
  });
});

describe('HTTP/JSON API (random model: deadlines, cancels, tokens, per-client bounds)', function () {
  let s: ServerProcess;
  let b64: string;
  let port: number;
  const LONG = { numBeams: 3, maxNewTokens: 1000 };
  const auth = { authorization: 'Bearer s3cret' };

  before(async () => {
    b64 = (await png(320, 240, 40)).toString('base64');
    const dir = mkdtempSync(join(tmpdir(), 'florence2-http-'));
    writeFileSync(join(dir, 'tokens'), 's3cret alice\n');
    s = await startServerProcess([
      '--model',
      await randomTiny(),
      '--http-port',
      '0',
      '--auth-tokens-file',
      join(dir, 'tokens'),
      '--max-inflight-per-client',
      '1',
    ]);
    await s.serving;
    port = s.httpPort!;
  });
  after(async () => {
    if (s?.child.exitCode === null) await s.stop();
  });

  const inFlight = (n: number, what: string) => waitForMetric(s, 'florence2_inflight_requests', { device: 'cpu:0' }, (v) => v === n, what);

  it('UNAUTHENTICATED is 401 with WWW-Authenticate; a known token passes', async () => {
    const none = await request(port, '/v1/GetModelInfo', { body: {} });
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.equal(none.json.error.status, 'UNAUTHENTICATED');
    const wrong = await request(port, '/v1/GetModelInfo', { body: {}, headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const ok = await request(port, '/v1/GetModelInfo', { body: {}, headers: auth });
    assert.equal(ok.status, 200, ok.text);
  });

  it('DEADLINE_EXCEEDED is 504 (grpc-timeout header), and the request stops in its batch', async () => {
    const from = s.logs.length;
    const r = await request(port, '/v1/Detect', {
      body: { image: { data: b64 }, options: LONG },
      headers: { ...auth, 'grpc-timeout': '1500m' },
    });
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.error.status, 'DEADLINE_EXCEEDED');
    await waitForLog(s, { msg: 'running request stopped in its batch' }, { from });
  });

  it('RESOURCE_EXHAUSTED is 429 with Retry-After; a client that disconnects cancels its request', async () => {
    const from = s.logs.length;
    const ac = new AbortController();
    const blocker = request(port, '/v1/Detect', { body: { image: { data: b64 }, options: LONG }, headers: auth, signal: ac.signal }).catch(
      (e: Error) => e,
    );
    await inFlight(1, 'the long request to run');
    const second = await request(port, '/v1/Detect', { body: { image: { data: b64 } }, headers: auth });
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.error.status, 'RESOURCE_EXHAUSTED');
    assert.match(second.json.error.message, /client alice already has 1 requests in flight/);
    assert.ok(Number(second.headers['retry-after']) >= 1, String(second.headers['retry-after']));
    assert.ok(second.json.error.retryAfterMs > 0);
    ac.abort();
    assert.ok((await blocker) instanceof Error);
    const cancelled = await waitForLog(s, { msg: 'running request stopped in its batch' }, { from });
    assert.match(String(cancelled.message), /^cancelled by the client; /);
    await inFlight(0, 'the cancelled request to leave the worker');
    const after = await request(port, '/v1/Detect', { body: { image: { data: b64 }, options: { maxNewTokens: 3 } }, headers: auth });
    assert.equal(after.status, 200, after.text);
    assert.equal(after.json.meta.generatedTokens, 3);
  });
});
