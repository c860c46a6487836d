/**
 * Every example of examples/README.md, run as the README writes it (its commands are read from the
 * README's `<!-- example: NAME -->` blocks), from the repository root, against one server on the
 * scripted `car` model with gRPC and HTTP/JSON on free ports, passed as the README's variables
 * FLORENCE2_ADDRESS and FLORENCE2_HTTP_URL.
 */
import { strict as assert } from 'node:assert';
import { type BashRun, runBash } from '../helpers/run-bash';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';

const ROOT = resolve(__dirname, '../..');
const README = join(ROOT, 'examples/README.md');
const IMAGES = ['parking.png', 'sign.png', 'street.jpg'];

/** The shell commands of each `<!-- example: NAME -->` block of examples/README.md. */
function readmeExamples(): Map<string, string> {
  const text = readFileSync(README, 'utf8');
  const examples = new Map<string, string>();
  for (const m of text.matchAll(/<!-- example: ([\w-]+) -->\s*```sh\n([\s\S]*?)```/g)) examples.set(m[1], m[2].trim());
  return examples;
}

/** Runs a README command with bash in the repository root (asynchronously: the server is a child of this process too). */
function runCommand(command: string, env: NodeJS.ProcessEnv): Promise<BashRun> {
  const base: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', GRPC_VERBOSITY: 'ERROR' };
  // Debian's python3 and grpcio, with nothing from a virtualenv leaking in; /usr/bin first so `python3` is Debian's.
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'PYENV_VERSION', 'NODE_OPTIONS']) delete base[k];
  base.PATH = `/usr/bin:${base.PATH ?? ''}`;
  return runBash(command, ROOT, { ...base, ...env });
}

function assertOk(r: BashRun, what: string): void {
  assert.equal(r.code, 0, `${what} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

describe('examples/: each README command runs against a demo-like server', function () {
  this.timeout(300_000);
  const examples = readmeExamples();
  let server: ServerProcess;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    server = await startServerProcess(['--model', await carTiny(), '--http-port', '0']);
    await server.serving;
    assert.ok(server.httpPort, 'the server logged its HTTP port');
    env = { FLORENCE2_ADDRESS: server.address, FLORENCE2_HTTP_URL: `http://127.0.0.1:${server.httpPort}` };
  });
  after(async () => {
    await server?.stop();
  });

  it('the README has the four examples, and each names a file that exists', () => {
    assert.deepEqual([...examples.keys()].sort(), ['annotate', 'http', 'python', 'typescript']);
    for (const [name, command] of examples) {
      const file = /examples\/[\w/-]+\.(?:ts|py|sh)/.exec(command)?.[0];
      assert.ok(file && existsSync(join(ROOT, file)), `${name}: ${command} names a file under examples/`);
    }
  });

  it('typescript: one JSON line per image, each with a caption and the car box', async () => {
    const r = await runCommand(examples.get('typescript')!, env);
    assertOk(r, 'the TypeScript example');
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.image),
      IMAGES.map((i) => `examples/images/${i}`),
    );
    for (const l of lines) {
      assert.equal(typeof l.caption, 'string');
      assert.deepEqual(
        l.boxes.map((b: { label: string }) => b.label),
        ['car'],
        JSON.stringify(l),
      );
      const [b] = l.boxes;
      assert.ok(b.x1 < b.x2 && b.y1 < b.y2, JSON.stringify(b));
    }
  });

  it('python: detect prints the car box, OCR the text', async () => {
    const r = await runCommand(examples.get('python')!, env);
    assertOk(r, 'the Python example');
    assert.match(r.stdout, /^1 object\(s\) in examples\/images\/street\.jpg:\n {2}car \[\d+, \d+, \d+, \d+\]\n/);
    // The scripted model answers every task with its script; OCR's text is what the model wrote.
    assert.match(r.stdout, /^text: '.*car.*'$/m);
  });

  it('annotate: a YOLO dataset with every image, a car label each, and data.yaml', async () => {
    const r = await runCommand(examples.get('annotate')!, env);
    assertOk(r, 'the annotation example');
    const out = /^wrote (.+):$/m.exec(r.stdout)?.[1];
    assert.ok(out, `the script says where it wrote:\n${r.stdout}`);
    try {
      const labels = ['train', 'val'].flatMap((split) =>
        existsSync(join(out, 'labels', split)) ? readdirSync(join(out, 'labels', split)).map((f) => join(out, 'labels', split, f)) : [],
      );
      assert.deepEqual(labels.map((f) => f.replace(/^.*\//, '')).sort(), ['parking.txt', 'sign.txt', 'street.txt']);
      for (const f of labels) assert.match(readFileSync(f, 'utf8'), /^0 [\d.]+ [\d.]+ [\d.]+ [\d.]+\n$/, f);
      assert.match(readFileSync(join(out, 'data.yaml'), 'utf8'), /car/);
      // The listing shows what was written.
      assert.match(r.stdout, /^\.\/data\.yaml$/m);
      assert.match(r.stdout, /^\.\/labels\/(train|val)\/street\.txt$/m);
      assert.doesNotMatch(r.stdout, /\.annotate/, 'the resume state is not listed');
    } finally {
      // The README's output folder is a fresh temporary one: remove it and its parent.
      rmSync(dirname(out), { recursive: true, force: true });
    }
  });

  it('http: Detect and Caption answer 200 with the car, /openapi.json lists the paths, the mistake is a 400 naming the field', async () => {
    const r = await runCommand(examples.get('http')!, env);
    assertOk(r, 'the curl example');
    const parts = r.stdout.split(/^(?=POST |GET )/m);
    const detect = parts.find((p) => p.startsWith('POST ') && p.includes('/v1/Detect'));
    assert.ok(detect, r.stdout);
    assert.match(detect, /\nHTTP 200\n/);
    assert.deepEqual(
      JSON.parse(detect.split('\n')[1]).boxes.map((b: { label: string }) => b.label),
      ['car'],
    );
    const captions = parts.filter((p) => p.startsWith('POST ') && p.includes('/v1/Caption'));
    assert.equal(captions.length, 2, r.stdout);
    assert.match(captions[0], /\nHTTP 200\n/);
    assert.equal(typeof JSON.parse(captions[0].split('\n')[1]).text, 'string');
    const openapi = parts.find((p) => p.startsWith('GET '));
    assert.match(openapi ?? '', /^\/v1\/Detect$/m);
    assert.match(openapi ?? '', /^\/v1\/Caption$/m);
    assert.match(captions[1], /\nHTTP 400\n/);
    const error = JSON.parse(captions[1].split('\n')[1]).error;
    assert.equal(error.code, 400);
    assert.equal(error.status, 'INVALID_ARGUMENT');
    assert.match(error.field, /num_beams|numBeams/);
  });
});
