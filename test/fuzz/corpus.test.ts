/**
 * A seeded fuzz corpus against the real server (a child process on loopback with a tiny scripted
 * model): malformed images, extreme field values, garbage protobuf, gzip bombs and oversized
 * repeated fields, over 1,000 cases. Every case must get a status from its allowlist (OK only for
 * genuinely valid input; never INTERNAL, UNKNOWN or a dropped connection); a valid request is
 * served throughout and afterwards, no worker restarted, and the server is still up.
 *
 * FUZZ_SEED=<int> replays another seed (the seed is printed with every failure); FUZZ_SCALE=<x>
 * scales the case counts; FUZZ_REPORT=<file> writes every failure as JSON.
 */
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { metricSample, scrapeMetrics, type ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';
import { type Corpus, type Ctx, fieldCases, garbageCases, gzipCases, imageCases, repeatedCases, unaryCase } from './cases';
import { type FuzzCase, Outcomes, type RawClient, rawCall, rawClient, runAll, type UnaryCase } from './harness';
import { atLimitImage, headerBombs, ImageRegistry, refusedFormats, validImages } from './images';
import { codec, type Limits, Oracle } from './requests';
import { MAX_REQUEST_ID_BYTES } from '../../src/server/main';

const SEED = process.env.FUZZ_SEED === undefined ? 0x5eed : Number(process.env.FUZZ_SEED);
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const count = (n: number) => Math.max(1, Math.round(n * SCALE));

/** The limits passed on the server's command line; the server's defaults (from 8 on) are replaced by what GetModelInfo reports. */
const LIMITS: Limits = {
  maxImagePixels: 4_000_000,
  maxMessageBytes: 8 << 20,
  maxRequestTokens: 98_304,
  maxNumBeams: 8,
  maxNewTokens: 1024,
  maxTextChars: 2000,
  maxClasses: 32,
  defaultNumBeams: 3,
  maxStringBytes: 4 * 2000,
  // MAX_REQUEST_ID_BYTES of src/server/main.ts (not a setting).
  maxRequestIdBytes: MAX_REQUEST_ID_BYTES,
};
/** Per call; a case that takes this long is a failure (DEADLINE_EXCEEDED is in no allowlist). */
const CALL_DEADLINE_MS = 30_000;
/** A valid request every this many cases. */
const CANARY_EVERY = 50;

describe('fuzz corpus: hostile traffic against the server process', function () {
  this.timeout(120_000);
  let s: ServerProcess;
  let plain: RawClient;
  let gzip: RawClient;
  let ctx: Ctx;
  let canary: FuzzCase;
  const outcomes = new Outcomes();
  // set when the suite starts running: mocha defines every file's suites before running any
  let started = 0;
  const durations: string[] = [];
  const clientFor = (c: FuzzCase) => (c.gzip ? gzip : plain);

  before(async () => {
    started = Date.now();
    s = await startServerProcess([
      '--model',
      await carTiny(),
      '--devices',
      'cpu',
      '--max-image-pixels',
      String(LIMITS.maxImagePixels),
      '--max-message-bytes',
      String(LIMITS.maxMessageBytes),
      '--max-request-tokens',
      String(LIMITS.maxRequestTokens),
      // Fuzz traffic is never refused for load: the queue and the per-client bounds are far above it.
      '--max-queue-per-device',
      '100000',
      '--max-inflight-per-client',
      '0',
    ]);
    const registry = new ImageRegistry();
    const avif = sharp.format.heif?.input?.buffer === true;
    const valid = (await validImages(avif)).map((i) => registry.add(i));
    const corpus: Corpus = {
      valid,
      atLimit: registry.add(await atLimitImage(LIMITS.maxImagePixels)),
      bombs: headerBombs(valid, LIMITS.maxImagePixels).map((i) => registry.add(i)),
      refused: refusedFormats().map((i) => registry.add(i)),
      registry,
    };
    await s.serving;
    plain = rawClient(s.address);
    gzip = rawClient(s.address, { gzip: true });
    const deadline = Date.now() + 30_000;
    await Promise.all(
      [plain, gzip].map((c) => new Promise<void>((res, rej) => c.waitForReady(deadline, (e?: Error) => (e ? rej(e) : res())))),
    );
    // The oracle's limits are the server's own: those on its command line, and its defaults as GetModelInfo reports them.
    const info = codec.decodeResponse('GetModelInfo', await rawCall(plain, 'GetModelInfo', Buffer.alloc(0)));
    const limits: Limits = {
      ...LIMITS,
      maxNumBeams: info.limits.max_num_beams,
      maxNewTokens: info.limits.max_new_tokens,
      maxTextChars: info.limits.max_text_chars,
      maxClasses: info.limits.max_classes,
      defaultNumBeams: info.default_num_beams,
      maxStringBytes: 4 * info.limits.max_text_chars,
    };
    assert.deepEqual(
      [Number(info.limits.max_image_pixels), Number(info.limits.max_message_bytes)],
      [LIMITS.maxImagePixels, LIMITS.maxMessageBytes],
    );
    ctx = { oracle: new Oracle(limits, registry), limits, corpus };
    const png = valid.find((v) => v.name === 'png-rgb-64x48')!;
    const detect = unaryCase(ctx, 'canary', 'Detect', 'Detect', { image: { data: png.bytes } }, 'a valid Detect') as UnaryCase;
    canary = {
      ...detect,
      checkOk: (r) => detect.checkOk?.(r) ?? (r.boxes?.[0]?.label === 'car' ? null : `no car box: ${JSON.stringify(r.boxes)}`),
    };
  });

  after(async () => {
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`\n  fuzz corpus, seed ${SEED}: ${outcomes.total} cases in ${secs} s (${durations.join(', ')})`);
    console.log(
      outcomes
        .format()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
    console.log(`  allowlists: ${[...outcomes.allowlists].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    const slow = [...outcomes.slowest].map(([f, x]) => `${f} ${x.ms} ms`).join(', ');
    console.log(`  slowest case per family: ${slow}`);
    if (process.env.FUZZ_REPORT)
      writeFileSync(process.env.FUZZ_REPORT, JSON.stringify({ seed: SEED, failures: outcomes.failures }, null, 1));
    plain?.close();
    gzip?.close();
    await s?.stop();
  });

  /** Fails with the family's failures: seed, case index, target, input, expected and got, and the server's error log lines. */
  function assertNoFailures(family: string, logFrom: number): void {
    const failures = outcomes.failures.filter((f) => f.family === family);
    if (failures.length === 0) return;
    const groups = new Map<string, number>();
    for (const f of failures) groups.set(`${f.target} -> ${f.got}`, (groups.get(`${f.target} -> ${f.got}`) ?? 0) + 1);
    const serverErrors = s.logs
      .slice(logFrom)
      .filter((l) => l.level === 'error')
      .slice(0, 5)
      .map((l) => JSON.stringify(l).slice(0, 600));
    assert.fail(
      [
        `${failures.length} ${family} case(s) failed (seed ${SEED}; replay with FUZZ_SEED=${SEED}):`,
        `  by target and status: ${[...groups].map(([k, n]) => `${k} x${n}`).join(', ')}`,
        ...failures
          .slice(0, 12)
          .map((f) => `  #${f.index} ${f.target}: ${f.what}\n      expected ${f.expected}, got ${f.got} (${f.ms} ms): ${f.details}`),
        ...(failures.length > 12 ? [`  ... and ${failures.length - 12} more`] : []),
        ...(serverErrors.length ? ['  server error log lines:', ...serverErrors.map((l) => `    ${l}`)] : []),
      ].join('\n'),
    );
  }

  function family(name: string, title: string, build: () => FuzzCase[], concurrency: number, expectTargets: string[] = []) {
    it(`${title}`, async function () {
      const t0 = Date.now();
      const logFrom = s.logs.length;
      const cases = build();
      await runAll(outcomes, clientFor, cases, {
        concurrency,
        deadlineMs: CALL_DEADLINE_MS,
        every: CANARY_EVERY,
        between: () => outcomes.run(plain, canary, -1, CALL_DEADLINE_MS),
      });
      durations.push(`${name} ${cases.length} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const covered = outcomes.coverage.get(name) ?? new Set();
      // A target names an RPC (`Run`, `Stream`: any of their members) or one member (`Run.segment`).
      const missing = expectTargets.filter((t) => ![...covered].some((c) => c === t || c.startsWith(`${t}.`)));
      assertNoFailures(name, logFrom);
      assertNoFailures('canary', logFrom);
      assert.deepEqual(missing, [], `targets no ${name} case reached`);
    });
  }

  const IMAGE_TARGETS = ['Caption', 'Detect', 'DetectOpenVocabulary', 'GroundPhrases', 'Segment', 'Ocr', 'DescribeRegion'];
  const RUN_TARGETS = ['caption', 'detect', 'open_vocabulary', 'phrase_grounding', 'segment', 'ocr', 'region'].map((f) => `Run.${f}`);
  const ALL_RPCS = [...IMAGE_TARGETS, 'Run', 'Stream', 'GetModelInfo'];

  family(
    'images',
    'malformed, bomb and refused images through every image RPC get INVALID_ARGUMENT (valid ones OK)',
    () => imageCases(ctx, SEED + 1, count(600)),
    6,
    [...IMAGE_TARGETS, ...RUN_TARGETS, 'Stream'],
  );
  family(
    'fields',
    'wrong and extreme field values on every RPC get OK only when valid, else INVALID_ARGUMENT or RESOURCE_EXHAUSTED',
    () => fieldCases(ctx, SEED + 2, count(600)),
    6,
    ALL_RPCS,
  );
  family(
    'garbage',
    'garbage protobuf as the request message gets INVALID_ARGUMENT',
    () => garbageCases(ctx, SEED + 3, count(500)),
    6,
    ALL_RPCS,
  );
  family(
    'gzip',
    'gzip-compressed zero bombs get RESOURCE_EXHAUSTED over the message limit, else their status',
    () => gzipCases(ctx, SEED + 4, count(60)),
    2,
  );
  family(
    'repeated',
    'repeated fields with 10^5..10^6 entries get INVALID_ARGUMENT (RESOURCE_EXHAUSTED over the message limit)',
    () => repeatedCases(ctx, SEED + 5, count(40)),
    2,
  );

  it('afterwards: no worker restarted, the server is up, and a valid request is served', async () => {
    assert.equal(s.child.exitCode, null, 'the server process exited');
    assert.equal(s.child.signalCode, null, 'the server process was killed');
    const text = await scrapeMetrics(s);
    const restarts = text
      .split('\n')
      .filter((l) => l.startsWith('florence2_worker_restarts_total'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    assert.match(text, /^# TYPE florence2_worker_restarts_total counter$/m, 'the restart metric is exported under this name');
    assert.equal(restarts, 0, 'florence2_worker_restarts_total');
    assert.notEqual(metricSample(text, 'florence2_requests_total'), null);
    const before = outcomes.failures.length;
    await outcomes.run(plain, canary, -1, CALL_DEADLINE_MS);
    assert.equal(outcomes.failures.length, before, JSON.stringify(outcomes.failures.slice(before)));
    const internal = s.logs.filter((l) => l.level === 'error').length;
    assert.equal(
      internal,
      0,
      `server error log lines: ${s.logs
        .filter((l) => l.level === 'error')
        .slice(0, 3)
        .map((l) => JSON.stringify(l).slice(0, 400))
        .join('\n')}`,
    );
  });
});
