/** Annotation through a florence2 server gives the same dataset as annotation in process. */
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoAnnotator } from '../../src/annotate';
import { RemoteBackend } from '../../src/annotate/remote-backend';
import { Florence2Client } from 'florence2-client';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { tinyModel } from '../helpers/synth-models';
import { writeImage } from './helpers';
import { type FakeServer, oneBox, startFakeServer } from '../client/fake-server';

/** Every file under `dir` (relative path → content), skipping run state and timing-bearing files. */
function tree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const p = path.join(rel, e.name);
    if (e.name === '.annotate') continue;
    if (e.isDirectory()) Object.assign(out, tree(dir, p));
    else out[p] = readFileSync(path.join(dir, p)).toString('base64');
  }
  return out;
}

describe('annotate: remote backend (florence2 server)', function () {
  let server: ServerProcess;
  let model: string;
  let work: string;
  before(async () => {
    model = await tinyModel({
      name: 'tiny-annotate-two',
      script: 'car<loc_100><loc_100><loc_400><loc_400>person<loc_500><loc_200><loc_700><loc_900>',
      seed: 2,
    });
    server = await startServerProcess(['--model', model]);
    await server.serving;
    work = mkdtempSync(path.join(tmpdir(), 'annotate-remote-'));
    await writeImage(path.join(work, 'in', 'a.png'), 320, 240);
    await writeImage(path.join(work, 'in', 'b.jpg'), 200, 300, 'jpeg');
  });
  after(async () => {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('writes the same YOLO and COCO dataset as the embedded backend', async () => {
    const options = (outputDir: string) => ({
      data: path.join(work, 'in'),
      outputDir,
      classes: ['person', 'car'],
      format: ['yolo', 'coco'] as ('yolo' | 'coco')[],
      saveVisuals: true,
    });
    const remote = new AutoAnnotator({ server: server.address });
    const embedded = new AutoAnnotator({ model });
    try {
      const r = await remote.annotate(options(path.join(work, 'remote')));
      const e = await embedded.annotate(options(path.join(work, 'embedded')));
      assert.equal(r.failed, 0);
      assert.deepEqual(r.objectsPerClass, { person: 2, car: 2 });
      assert.deepEqual(r.objectsPerClass, e.objectsPerClass);
    } finally {
      await remote.close();
      await embedded.close();
    }
    const a = tree(path.join(work, 'remote'));
    const b = tree(path.join(work, 'embedded'));
    const differing = Object.keys({ ...a, ...b }).filter((k) => a[k] !== b[k] && k !== 'data.yaml');
    assert.deepEqual(differing, [], 'files differing between remote and embedded runs');
    // car is class 1 (classes order), box (100.5..400.5)/1000 of the image
    // FLORENCE2_DOCS_VISUAL=path keeps one visual of this run (the README shows it).
    if (process.env.FLORENCE2_DOCS_VISUAL) copyFileSync(path.join(work, 'remote', 'visuals', 'a.png'), process.env.FLORENCE2_DOCS_VISUAL);
    const label = readFileSync(path.join(work, 'remote', 'labels', 'a.txt'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(label.length, 2);
    assert.ok(
      label.some((l) => l.startsWith('1 0.2505')),
      label.join('\n'),
    );
  });
});

describe('annotate: remote backend with token auth', function () {
  let server: ServerProcess;
  let work: string;
  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'annotate-token-'));
    writeFileSync(path.join(work, 'tokens'), 'annotator-token annotator\n');
    const model = await tinyModel({ name: 'tiny-annotate-token', script: 'car<loc_100><loc_100><loc_400><loc_400>', seed: 3 });
    server = await startServerProcess(['--model', model, '--auth-tokens-file', path.join(work, 'tokens')]);
    await server.serving;
    await writeImage(path.join(work, 'in', 'a.png'), 320, 240);
  });
  after(async () => {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const annotate = async (token: string | undefined, out: string) => {
    const annotator = new AutoAnnotator({ server: server.address, ...(token !== undefined ? { token } : {}) });
    try {
      return await annotator.annotate({ data: path.join(work, 'in'), outputDir: path.join(work, out), classes: ['car'], format: ['yolo'] });
    } finally {
      await annotator.close();
    }
  };

  it('annotates with the token; without it every image fails UNAUTHENTICATED', async () => {
    const ok = await annotate('annotator-token', 'with');
    assert.equal(ok.failed, 0);
    assert.deepEqual(ok.objectsPerClass, { car: 1 });
    const refused = await annotate(undefined, 'without');
    assert.equal(refused.failed, 1);
    assert.match(refused.failures[0].error, /^UNAUTHENTICATED: /);
  });
});

describe('annotate: requests in flight on a server (concurrency)', function () {
  let fake: FakeServer;
  let work: string;
  let received = 0;
  let limit = 0;
  let held: Array<() => void> = [];
  const IMAGES = 10;

  before(async () => {
    // Holds each Detect until `limit` are held (or every image has asked), then answers them all, so
    // a client that keeps `limit` in flight gets there, and one that starts more is seen starting them.
    fake = await startFakeServer({
      Detect(_call, cb) {
        received++;
        held.push(() => cb(null, oneBox('car')));
        if (held.length === limit || received === IMAGES) {
          const now = held;
          held = [];
          for (const answer of now) answer();
        }
      },
    });
    work = mkdtempSync(path.join(tmpdir(), 'annotate-concurrency-'));
    for (let i = 0; i < IMAGES; i++) await writeImage(path.join(work, 'in', `i${i}.png`), 32, 24);
  });
  after(async () => {
    await fake?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const n of [1, 3]) {
    it(`concurrency ${n} keeps ${n} request${n === 1 ? '' : 's'} in flight: one request per backend call`, async () => {
      [received, limit] = [0, n];
      const client = new Florence2Client({ address: fake.address });
      // Counted where calls start and end, in the client: what the server sees is bounded by its own release rule.
      let inFlight = 0;
      let maxInFlight = 0;
      const detect = client.detect.bind(client);
      client.detect = (...args) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        return detect(...args).finally(() => inFlight--);
      };
      const annotator = new AutoAnnotator({ backend: new RemoteBackend(client) });
      try {
        const r = await annotator.annotate({ data: path.join(work, 'in'), outputDir: path.join(work, `out-${n}`), concurrency: n });
        assert.equal(r.annotated, IMAGES);
      } finally {
        client.close();
      }
      assert.equal(received, IMAGES);
      assert.equal(maxInFlight, n);
    });
  }
});
