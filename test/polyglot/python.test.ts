/**
 * Polyglot check: a Python client built only from our .proto files calls the real server.
 *
 * Stubs are generated with Debian's protoc and grpc_python_plugin (protobuf-compiler,
 * protobuf-compiler-grpc) into a temporary folder, for florence2/v1/florence2.proto and for grpc.health.v1 (the health.proto
 * that grpc-health-check ships, since python3-grpcio has no grpc_health module), and
 * test/polyglot/python_client.py calls the server with python3-grpcio. test/polyglot/python_reflection.py
 * knows no proto: it builds a descriptor pool from what server reflection serves (its stubs come from
 * @grpc/reflection's reflection.proto). Not python3-grpc-tools: its protoc 3.5.1 predates proto3
 * `optional` (3.15), which the proto uses for scores. `.ci/run` installs the Debian packages; where
 * /usr/bin/python3 cannot import grpc the suite is skipped with the reason.
 */
import { strict as assert } from 'node:assert';
import { near } from '../helpers/assertions';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { type ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny, tinyModel } from '../helpers/synth-models';

/** Debian's interpreter: it sees /usr/lib/python3/dist-packages (a pyenv `python3` on PATH may not). */
const PYTHON = '/usr/bin/python3';
const CLIENT = resolve(__dirname, 'python_client.py');
const REFLECTION_CLIENT = resolve(__dirname, 'python_reflection.py');
/** reflection.proto as @grpc/reflection ships it. */
const REFLECTION_PROTO = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
const PROTO_DIR = resolve(__dirname, '../../proto');
/** `.../proto` of grpc-health-check, holding health/v1/health.proto. */
const HEALTH_PROTO_DIR = resolve(dirname(healthProtoPath), '../..');

const OCR_SCRIPT = 'CUDA<loc_414><loc_100><loc_932><loc_100><loc_932><loc_229><loc_414><loc_229>';
/** `car<loc_53><loc_333><loc_933><loc_774>` on 640x480: ((bin + 0.5) / 1000) * extent. */
const CAR_BOX_640x480 = [34.24, 160.08, 597.44, 371.76];
/** The OCR script's quad on 403x500. */
const CUDA_QUAD_403x500 = [167.0435, 50.25, 375.7975, 50.25, 375.7975, 114.75, 167.0435, 114.75];

/** The environment for Debian's Python: no pyenv/virtualenv settings leaking in. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', GRPC_VERBOSITY: 'ERROR' };
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'VIRTUAL_ENV', 'PYENV_VERSION']) delete env[k];
  return env;
}

function runPython(args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(PYTHON, args, { env: pythonEnv(), encoding: 'utf8', timeout: timeoutMs });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ENOENT') throw r.error;
  return { status: r.error ? null : r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : '') };
}

/** Why the Python side cannot run here, or null when /usr/bin/python3 imports grpc. */
function pythonMissing(): string | null {
  const r = runPython(['-c', 'import grpc, google.protobuf'], 30_000);
  if (r.status === 0) return null;
  if (r.status === null) return `${PYTHON} is not available (${r.stderr.trim() || 'cannot run'})`;
  const last = r.stderr.trim().split('\n').pop();
  return `${PYTHON} cannot import grpc (${last}); install the Debian package python3-grpcio (.ci/run does)`;
}

function protoc(includeDir: string, file: string, outDir: string): void {
  const plugin = spawnSync('sh', ['-c', 'command -v grpc_python_plugin'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(plugin, 'grpc_python_plugin is needed: the Debian package protobuf-compiler-grpc (.ci/run installs it)');
  const r = spawnSync(
    'protoc',
    [`--plugin=protoc-gen-grpc_python=${plugin}`, '-I', includeDir, `--python_out=${outDir}`, `--grpc_python_out=${outDir}`, file],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, `protoc ${file} failed:\n${r.error?.message ?? ''}${r.stdout}${r.stderr}`);
}

describe('polyglot: Python client (python3-grpcio, stubs from Debian protoc)', function () {
  let work: string;
  let stubs: string;
  let carImage: string;
  let ocrImage: string;
  let car: ServerProcess | undefined;
  let ocr: ServerProcess | undefined;

  /** Runs python_client.py against `address` and returns its parsed JSON. */
  function client(address: string, image: string | null, actions: string[]): Record<string, any> {
    const r = runPython([CLIENT, '--stubs', stubs, '--address', address, ...(image ? ['--image', image] : []), ...actions]);
    assert.equal(r.status, 0, `python_client.py ${actions.join(' ')} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  before(async function () {
    const missing = pythonMissing();
    if (missing !== null) {
      console.warn(`    skipping the Python polyglot test: ${missing}`);
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), 'florence2-polyglot-'));
    stubs = join(work, 'stubs');
    mkdirSync(stubs);
    protoc(PROTO_DIR, 'florence2/v1/florence2.proto', stubs);
    protoc(HEALTH_PROTO_DIR, 'health/v1/health.proto', stubs);
    // Copied to refl/: generated as grpc/reflection/v1/, its Python package would shadow grpcio's `grpc`.
    mkdirSync(join(work, 'refl-src', 'refl'), { recursive: true });
    copyFileSync(REFLECTION_PROTO, join(work, 'refl-src', 'refl', 'reflection.proto'));
    protoc(join(work, 'refl-src'), 'refl/reflection.proto', stubs);
    carImage = join(work, 'car-640x480.png');
    ocrImage = join(work, 'book-403x500.png');
    writeFileSync(
      carImage,
      await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 120, g: 90, b: 200 } } })
        .png()
        .toBuffer(),
    );
    writeFileSync(
      ocrImage,
      await sharp({ create: { width: 403, height: 500, channels: 3, background: { r: 240, g: 240, b: 230 } } })
        .png()
        .toBuffer(),
    );
    const [carDir, ocrDir] = await Promise.all([carTiny(), tinyModel({ name: 'tiny-ocr-cuda', script: OCR_SCRIPT, seed: 5 })]);
    [car, ocr] = await Promise.all([
      startServerProcess(['--model', carDir, '--devices', 'cpu']),
      startServerProcess(['--model', ocrDir, '--devices', 'cpu']),
    ]);
    await Promise.all([car.serving, ocr.serving]);
  });

  after(async () => {
    const codes = await Promise.all([car?.stop(), ocr?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
    for (const code of codes) if (code !== undefined) assert.equal(code, 0);
  });

  it('health: Check reports SERVING for the server and for florence2.v1.Florence2', () => {
    const out = client(car!.address, null, ['health']);
    assert.deepEqual(out.health, { '': 'SERVING', 'florence2.v1.Florence2': 'SERVING' });
  });

  it('Detect: the scripted car box, scaled to the 640x480 image, with label, score and meta', () => {
    const out = client(car!.address, carImage, ['detect']);
    const boxes = out.detect.boxes as { x1: number; y1: number; x2: number; y2: number; label: string; score: number }[];
    assert.equal(boxes.length, 1);
    near([boxes[0].x1, boxes[0].y1, boxes[0].x2, boxes[0].y2], CAR_BOX_640x480);
    assert.equal(boxes[0].label, 'car');
    assert.ok(boxes[0].score > 0.99 && boxes[0].score <= 1, `score ${boxes[0].score}`);
    const meta = out.detect.meta;
    assert.equal(meta.raw_text, '</s><s>car<loc_53><loc_333><loc_933><loc_774></s>');
    assert.deepEqual([meta.image_width, meta.image_height], [640, 480]);
    assert.equal(meta.generated_tokens, 7);
    assert.equal(meta.device, 'cpu:0');
    assert.match(meta.request_id, /^[0-9a-f-]{36}$/);
  });

  it('Ocr with regions: the scripted line, its quadrilateral scaled to the 403x500 image', () => {
    const out = client(ocr!.address, ocrImage, ['ocr_regions']);
    const lines = out.ocr_regions.lines as { points: number[]; text: string }[];
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0].text, 'CUDA');
    near(lines[0].points, CUDA_QUAD_403x500);
    assert.deepEqual([out.ocr_regions.meta.image_width, out.ocr_regions.meta.image_height], [403, 500]);
  });

  it('reflection alone gives a descriptor pool the services, their methods and ModelInfo.files as a map', () => {
    const r = runPython([REFLECTION_CLIENT, '--stubs', stubs, '--address', car!.address]);
    assert.equal(r.status, 0, `python_reflection.py exited with ${r.status}:\n${r.stdout}${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.error, undefined, String(out.error));
    assert.deepEqual(out.services, ['florence2.v1.Florence2', 'grpc.health.v1.Health']);
    assert.deepEqual(out.methods, {
      'florence2.v1.Florence2': [
        'Caption',
        'DescribeRegion',
        'Detect',
        'DetectOpenVocabulary',
        'GetModelInfo',
        'GroundPhrases',
        'Ocr',
        'Run',
        'Segment',
        'Stream',
      ],
      'grpc.health.v1.Health': ['Check', 'List', 'Watch'],
    });
    assert.equal(out.files_is_map, true);
    assert.equal(out.files_entry, 'FilesEntry');
  });

  it('GetModelInfo, the bidirectional Stream and a status code cross the language boundary', () => {
    const out = client(car!.address, carImage, ['info', 'stream', 'detect_invalid']);
    assert.deepEqual(out.info.devices, ['cpu:0']);
    assert.equal(out.info.tasks.length, 15);
    assert.deepEqual(out.stream, { a: ['car'], b: ['car'] });
    assert.equal(out.detect_invalid.code, 'INVALID_ARGUMENT');
    assert.match(out.detect_invalid.details, /`image\.data` is not a decodable image/);
  });
});
