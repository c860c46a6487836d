/**
 * The Python client in clients/python (florence2_client) against real servers on scripted tiny
 * models: its unittest suites run with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf)
 * and PYTHONPATH=clients/python, so they use the committed stubs. The suites assert the scripted
 * outputs; any failure or skip fails here. The README's example runs too, and the stub drift check
 * where Debian's protoc is.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { type ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny, tinyModel } from '../helpers/synth-models';
import { makeCerts, type TestCerts } from '../client/fake-server';

const PYTHON = '/usr/bin/python3';
const CLIENT_DIR = resolve(__dirname, '../../clients/python');
const OCR_LINES_SCRIPT =
  'HELLO<loc_100><loc_200><loc_500><loc_200><loc_500><loc_300><loc_100><loc_300>WORLD<loc_600><loc_700><loc_900><loc_700><loc_900><loc_800><loc_600><loc_800>';

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
  const base: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', GRPC_VERBOSITY: 'ERROR' };
  // Debian's interpreter with nothing from pyenv or a virtualenv leaking in.
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'VIRTUAL_ENV', 'PYENV_VERSION']) delete base[k];
  const r = spawnSync(command, args, { env: { ...base, ...env }, encoding: 'utf8', timeout: 300_000, cwd: CLIENT_DIR });
  return { status: r.error ? null : r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Runs one unittest module of clients/python/tests; fails on an error, a failure or a skip. */
function unittest(module: string, env: NodeJS.ProcessEnv = {}): string {
  const r = run(PYTHON, ['-m', 'unittest', '-v', module], { PYTHONPATH: CLIENT_DIR, ...env });
  assert.equal(r.status, 0, `python -m unittest ${module} exited with ${r.status}:\n${r.output}`);
  assert.match(r.output, /^OK$/m, `every test ran and passed (no skips):\n${r.output}`);
  return r.output;
}

describe('polyglot: the Python client package (clients/python)', function () {
  before(function () {
    const r = run(PYTHON, ['-c', 'import grpc, google.protobuf']);
    if (r.status !== 0) {
      console.warn(`    skipping the Python client tests: ${PYTHON} cannot import grpc/protobuf (install python3-grpcio)`);
      this.skip();
    }
  });

  it('unit: errors, field parsing, retry/backoff and request conversion (no server)', () => {
    unittest('tests.test_unit');
  });

  it('committed stubs match what gen.sh generates from proto/ (where Debian protoc 3.21 is installed)', function () {
    if (run('sh', ['-c', 'command -v protoc && command -v grpc_python_plugin']).status !== 0) {
      console.warn('    skipping the stub drift check: needs protobuf-compiler and protobuf-compiler-grpc');
      this.skip();
    }
    const r = run('bash', [join(CLIENT_DIR, 'tools/gen.sh'), '--check']);
    assert.equal(r.status, 0, r.output);
  });

  describe('against servers on scripted models', function () {
    let work: string;
    let car: ServerProcess | undefined;
    let ocr: ServerProcess | undefined;
    let tls: ServerProcess | undefined;
    let certs: TestCerts | null = null;

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'florence2-pyclient-'));
      const png = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 120, g: 90, b: 200 } } })
        .png()
        .toBuffer();
      writeFileSync(join(work, 'car-640x480.png'), png);
      const [carDir, ocrDir] = await Promise.all([carTiny(), tinyModel({ name: 'tiny-ocr-lines', script: OCR_LINES_SCRIPT, seed: 5 })]);
      certs = makeCerts();
      assert.ok(certs, 'openssl makes the TLS test certificate (.ci/run installs it)');
      writeFileSync(join(work, 'tokens'), 'py-token python-client\n');
      [car, ocr, tls] = await Promise.all([
        startServerProcess(['--model', carDir, '--devices', 'cpu']),
        startServerProcess(['--model', ocrDir, '--devices', 'cpu']),
        startServerProcess([
          '--model',
          carDir,
          '--devices',
          'cpu',
          '--tls-cert',
          certs.certPath,
          '--tls-key',
          join(certs.dir, 'key.pem'),
          '--auth-tokens-file',
          join(work, 'tokens'),
        ]),
      ]);
      await Promise.all([car.serving, ocr.serving, tls.serving]);
    });

    after(async () => {
      const codes = await Promise.all([car?.stop(), ocr?.stop(), tls?.stop()]);
      if (work) rmSync(work, { recursive: true, force: true });
      certs?.cleanup();
      for (const code of codes) if (code !== undefined) assert.equal(code, 0);
    });

    it('every task family, run, model info, health, a typed INVALID_ARGUMENT, the stream, TLS and a token', () => {
      const out = unittest('tests.test_server', {
        FLORENCE2_CAR_ADDRESS: car!.address,
        FLORENCE2_OCR_ADDRESS: ocr!.address,
        FLORENCE2_IMAGE: join(work, 'car-640x480.png'),
        FLORENCE2_TLS_ADDRESS: `localhost:${tls!.port}`,
        FLORENCE2_TLS_CA: certs!.certPath,
        FLORENCE2_TOKEN: 'py-token',
      });
      // The suite's size, so that a test lost from it shows here.
      assert.match(out, /^Ran 16 tests/m, out);
    });

    it("the README's usage example runs as written (against this server and image)", () => {
      const readme = readFileSync(join(CLIENT_DIR, 'README.md'), 'utf8');
      const example = /```python\n([\s\S]*?)```/.exec(readme)?.[1];
      assert.ok(example, 'clients/python/README.md has a python example');
      const image = join(work, 'car-640x480.png');
      const code = example.replaceAll('"localhost:50051"', JSON.stringify(car!.address)).replaceAll('"photo.jpg"', JSON.stringify(image));
      const r = run(PYTHON, ['-c', code], { PYTHONPATH: CLIENT_DIR });
      assert.equal(r.status, 0, r.output);
      const lines = r.output.trim().split('\n');
      assert.match(lines[0], /^car 34 160 597 372 0\.99\d*|^car 34 160 597 372 1\.0$/, r.output);
      assert.deepEqual(lines.slice(1, 3), ['car<loc_53><loc_333><loc_933><loc_774>', 'rejected: options.num_beams'], r.output);
      assert.deepEqual(lines.slice(3).sort(), ["0 ['car']", "1 ['car']", "2 ['car']", "3 ['car']"], r.output);
    });
  });
});
