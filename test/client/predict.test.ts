/**
 * `florence2 predict` against a real server child process (scripted car model): `--json` on a
 * folder with a corrupt file, readable output, `--save-visuals`, usage errors, an unreachable
 * server, TLS with `--ca`, and the command run as its own process.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';
import { predict, type PredictFailure, type PredictSuccess } from '../../src/cli/predict';
import { closedPort, makeCerts, oneBox, startFakeServer } from './fake-server';

const PREDICT = resolve(__dirname, '../../src/cli/predict.ts');

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs predict in-process with captured, non-TTY output. */
async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({
    write(text: string, cb?: (err?: Error | null) => void) {
      append(text);
      cb?.();
      return true;
    },
    isTTY: false,
  });
  const code = await predict(argv, env, { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)) });
  return { code, stdout, stderr };
}

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: { r: 120, g: 90, b: 200 } } });

describe('florence2 predict', function () {
  let s: ServerProcess;
  let dir: string;
  let folder: string;
  let a: string;
  let b: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'florence2-predict-'));
    folder = join(dir, 'photos');
    mkdirSync(folder);
    a = join(folder, 'a.png');
    b = join(folder, 'b.jpg');
    writeFileSync(a, await solid(640, 480).png().toBuffer());
    writeFileSync(b, await solid(320, 240).jpeg().toBuffer());
    writeFileSync(join(folder, 'corrupt.jpg'), Buffer.from('this is not a jpeg'));
    writeFileSync(join(folder, 'notes.txt'), 'not an image: skipped');
    s = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu']);
    await s.serving;
  });
  after(async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for a server that is still loading its model, then predicts', async () => {
    const warming = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu:0,cpu:1']);
    try {
      const servingAtStart = warming.logs.some((l) => l.msg === 'serving');
      const r = await run(['--server', warming.address, '--task', 'od', '--no-progress', a]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /car {2}\(34\.2, 160\.1\)-\(597\.4, 371\.8\)/);
      // Two workers take seconds to load: predict started before the server was serving.
      assert.equal(servingAtStart, false);
    } finally {
      await warming.stop();
    }
  });

  it('--json on a folder: one document, results in name order, the corrupt file under failures, exit 1', async () => {
    const r = await run(['--server', s.address, '--task', 'od', '--json', folder]);
    assert.equal(r.code, 1, r.stderr);
    const doc = JSON.parse(r.stdout) as { results: PredictSuccess[]; failures: PredictFailure[] };
    assert.deepEqual(Object.keys(doc), ['results', 'failures']);
    assert.deepEqual(
      doc.results.map((x) => x.image),
      [a, b],
    );
    for (const x of doc.results) {
      assert.equal(x.task, '<OD>');
      assert.equal(x.result.family, 'detect');
      assert.equal('meta' in x.result, false, 'meta is beside the result');
    }
    const [ra, rb] = doc.results.map((x) => x.result as unknown as { boxes: { x1: number; y2: number; label: string; score: number }[] });
    assert.equal(ra.boxes[0].label, 'car');
    assert.ok(Math.abs(ra.boxes[0].x1 - 34.24) < 1e-3);
    assert.ok(Math.abs(rb.boxes[0].y2 - 371.76 / 2) < 1e-3, 'scaled to the 320x240 image');
    assert.ok(ra.boxes[0].score > 0.99, 'predict asks for scores');
    assert.deepEqual([doc.results[1].meta.imageWidth, doc.results[1].meta.imageHeight], [320, 240]);
    assert.equal(doc.failures.length, 1);
    assert.equal(doc.failures[0].image, join(folder, 'corrupt.jpg'));
    assert.equal(doc.failures[0].error.code, 'INVALID_ARGUMENT');
    assert.match(doc.failures[0].error.message, /`detect\.image\.data` is not a decodable image/);
    // Progress goes to stderr (one line per image when stderr is not a terminal).
    assert.match(r.stderr, /\[3\/3\]/);
  });

  it('--json: timings rounded to 3 significant digits, every other number as short; rawText only with --raw-text', async () => {
    const r = await run(['--server', s.address, '--task', 'od', '--json', '--no-progress', a]);
    assert.equal(r.code, 0, r.stderr);
    const [x] = (JSON.parse(r.stdout) as { results: PredictSuccess[] }).results;
    const timings = Object.entries(x.meta.timings);
    assert.ok(timings.length >= 7);
    for (const [name, v] of timings) {
      assert.equal(typeof v, 'number', name);
      assert.equal(v, Number(v.toPrecision(3)), `${name} ${v} has at most 3 significant digits`);
    }
    assert.ok(x.meta.timings.totalMs > 0, 'rounding keeps a value');
    // No number in the document is written with more digits than it means (no 0.06043900000076974).
    for (const m of r.stdout.matchAll(/-?\d+\.(\d+)/g)) assert.ok(m[1].length <= 4, `${m[0]} in the JSON`);
    assert.equal('rawText' in x.meta, false, 'rawText was not asked for');

    const raw = await run(['--server', s.address, '--task', 'od', '--json', '--raw-text', '--no-progress', a]);
    assert.equal(raw.code, 0, raw.stderr);
    const [y] = (JSON.parse(raw.stdout) as { results: PredictSuccess[] }).results;
    assert.match(y.meta.rawText ?? '', /car<loc_53><loc_333><loc_933><loc_774>/);
  });

  it('readable output by default; exit 0 when every image succeeds; no progress for one image', async () => {
    const r = await run(['--server', s.address, '--task', '<OD>', a]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${a}: 1 object\n  car  (34.2, 160.1)-(597.4, 371.8)  score 1.00\n`);
    assert.equal(r.stderr, '');

    const two = await run(['--server', s.address, '--task', 'caption', '--no-progress', a, b]);
    assert.equal(two.code, 0, two.stderr);
    assert.equal(two.stdout, `${a}: car<loc_53><loc_333><loc_933><loc_774>\n${b}: car<loc_53><loc_333><loc_933><loc_774>\n`);
    assert.equal(two.stderr, '');
  });

  it('tasks with inputs: classes, text, region; failures go to stderr', async () => {
    const ov = await run(['--server', s.address, '--task', 'open-vocabulary', '--classes', 'automobile, truck', a]);
    assert.equal(ov.code, 0, ov.stderr);
    assert.match(ov.stdout, /: 2 objects\n {2}automobile {2}\(34\.2, 160\.1\)-\(597\.4, 371\.8\) {2}score 1\.00\n {2}truck /);
    const pg = await run(['--server', s.address, '--task', 'phrase-grounding', '--text', 'a car', a]);
    assert.match(pg.stdout, /: 1 phrase\n {2}car /);
    const seg = await run(['--server', s.address, '--task', 'referring-segmentation', '--text', 'the car', a]);
    assert.match(seg.stdout, /: 1 instance\n {2}\(mask\) {2}1 polygon, 2 points, bounds \(34\.2, 160\.1\)-\(597\.4, 371\.8\)/);
    const reg = await run([
      '--server',
      s.address,
      '--task',
      'region-description',
      '--region',
      '33,160,597,371',
      '--beams',
      '1',
      '--max-new-tokens',
      '20',
      a,
    ]);
    assert.equal(reg.code, 0, reg.stderr);
    assert.equal(reg.stdout, `${a}: car<loc_53><loc_333><loc_933><loc_774>\n`);
    const bad = await run(['--server', s.address, '--task', 'region-category', '--region', '0,0,700,100', a]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /a\.png: failed: INVALID_ARGUMENT: `region`/);
  });

  it('--save-visuals writes <stem>.png per image, the size of the image, with the result drawn', async () => {
    const out = join(dir, 'visuals');
    const r = await run(['--server', s.address, '--task', 'od', '--save-visuals', out, '--concurrency', '2', folder]);
    assert.equal(r.code, 1);
    assert.deepEqual(readdirSync(out).sort(), ['a.png', 'b.png']);
    for (const [name, original, size] of [
      ['a.png', a, [640, 480]],
      ['b.png', b, [320, 240]],
    ] as const) {
      const drawn = readFileSync(join(out, name));
      const meta = await sharp(drawn).metadata();
      assert.equal(meta.format, 'png');
      assert.deepEqual([meta.width, meta.height], size);
      const px = await sharp(drawn).removeAlpha().raw().toBuffer();
      const orig = await sharp(original).removeAlpha().raw().toBuffer();
      let differing = 0;
      for (let i = 0; i < px.length; i++) if (Math.abs(px[i] - orig[i]) > 30) differing++;
      assert.ok(differing > 1000, `${name}: ${differing} changed channel values`);
    }
    // A caption has no geometry: it is drawn as a band of text.
    const cap = await run(['--server', s.address, '--task', 'caption', '--save-visuals', join(dir, 'cap'), a]);
    assert.equal(cap.code, 0);
    assert.deepEqual(readdirSync(join(dir, 'cap')), ['a.png']);
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    const cases: [string[], RegExp][] = [
      [['--task', 'od', a], /--server HOST:PORT is required/],
      [['--server', s.address, a], /--task is required/],
      [['--server', s.address, '--task', 'segmentation', a], /unknown task "segmentation"/],
      [['--server', s.address, '--task', 'phrase-grounding', a], /needs --text/],
      [['--server', s.address, '--task', 'open-vocabulary', a], /needs --classes/],
      [['--server', s.address, '--task', 'region-ocr', '--region', '1,2,3', a], /--region: expected four numbers/],
      [['--server', s.address, '--task', 'od', '--region', '1,2,3,4', a], /--region is not used by <OD>/],
      [['--server', s.address, '--task', 'od', '--beams', 'three', a], /--beams must be a positive integer/],
      [['--server', s.address, '--task', 'od'], /at least one IMAGE or FOLDER/],
      [['--server', s.address, '--task', 'od', join(dir, 'nope.png')], /nope\.png: no such file or folder/],
      [['--server', s.address, '--task', 'od', '--frobnicate', a], /Unknown option '--frobnicate'/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
    // FLORENCE2_SERVER stands in for --server.
    assert.equal((await run(['--task', 'od', a], { FLORENCE2_SERVER: s.address })).code, 0);
  });

  it('--help exits 0 with the usage on stdout', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: florence2 predict --server HOST:PORT --task TASK/);
    assert.match(r.stdout, /Exit codes: 0 all images succeeded, 1 some image failed/);
  });

  it('an unreachable server exits 3', async () => {
    const r = await run(['--server', `127.0.0.1:${await closedPort()}`, '--task', 'od', a]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot use the server at 127\.0\.0\.1:\d+: UNAVAILABLE/);
    // grpc-js ends this text with an empty "Resolution note: ": the message ends with the cause instead.
    assert.match(r.stderr, /ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
    assert.doesNotMatch(r.stderr, /Resolution note|Error: connect/);
    assert.equal(r.stdout, '');
  });

  it('TLS with --ca', async function () {
    const certs = makeCerts();
    if (!certs) return this.skip(); // openssl is not installed: no way to make certificates offline
    const fake = await startFakeServer(
      {
        GetModelInfo: (_c, cb) => cb(null, { model: 'fake', tasks: [] }),
        Run: (_c, cb) => cb(null, { detect: oneBox('secure') }),
      },
      grpc.ServerCredentials.createSsl(null, [{ private_key: certs.key, cert_chain: certs.cert }], false),
    );
    try {
      const r = await run(['--server', `localhost:${fake.port}`, '--ca', certs.certPath, '--task', 'od', a]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /: 1 object\n {2}secure /);
    } finally {
      await fake.stop();
      certs.cleanup();
    }
  });

  it('as its own process: JSON on stdout only, the exit code from the outcome', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', PREDICT, '--server', s.address, '--task', 'od', '--json', folder], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    // 'close', not 'exit': stdout may still hold data when the process has exited (seen under load).
    const code = await new Promise<number | null>((res) => child.once('close', res));
    assert.equal(code, 1, stderr);
    const doc = JSON.parse(stdout);
    assert.equal(doc.results.length, 2);
    assert.equal(doc.failures.length, 1);
  });
});
