/**
 * Auto-annotation end to end on scripted synthetic models (the decoder always emits its script) and
 * generated images: exact label files, data.yaml, COCO JSON (checked against COCO's rules), visuals;
 * bad inputs; resume after an abort and after a SIGKILL giving the same bytes as an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  AutoAnnotator,
  DatasetError,
  EmbeddedBackend,
  assignSplits,
  renderVisual,
  type AnnotateOptions,
  type AnnotationSummary,
  type ImageRecord,
} from '../../src/annotate';
import { isServerTarget } from '../../src/cli/annotate';
import { tinyModel } from '../helpers/synth-models';
import {
  CAR_LINE,
  FakeBackend,
  PERSON_LINE,
  TRIANGLE_SCRIPT,
  TWO_CLASS_SCRIPT,
  assertSameSnapshot,
  checkCocoRules,
  runCli,
  snapshot,
  writeImage,
} from './helpers';

const twoClassModel = () => tinyModel({ name: 'annotate-two-class', script: TWO_CLASS_SCRIPT, seed: 5 });
const triangleModel = () => tinyModel({ name: 'annotate-triangle', script: TRIANGLE_SCRIPT, seed: 6 });

const readText = (p: string) => fs.readFile(p, 'utf8');
const readJson = async (p: string) => JSON.parse(await readText(p));
const list = async (dir: string) => [...(await snapshot(dir)).keys()];

describe('annotate: end to end on synthetic models', function () {
  let root: string;
  let twoClass: EmbeddedBackend;
  let triangle: EmbeddedBackend;
  let twoClassDir: string;

  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'annotate-e2e-'));
    twoClassDir = await twoClassModel();
    twoClass = await EmbeddedBackend.load(twoClassDir);
    triangle = await EmbeddedBackend.load(await triangleModel());
  });
  after(async () => {
    await twoClass?.close();
    await triangle?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const fresh = async (name: string) => {
    const dir = path.join(root, name);
    await fs.rm(dir, { recursive: true, force: true });
    return dir;
  };

  async function run(backend: EmbeddedBackend | FakeBackend, options: AnnotateOptions): Promise<AnnotationSummary> {
    return new AutoAnnotator({ backend }).annotate(options);
  }

  it('grounding with classes: exact labels, data.yaml, classes.txt, COCO and visuals', async () => {
    const data = path.join(root, 'g-data');
    await writeImage(path.join(data, 'img_a.png'), 64, 48);
    await writeImage(path.join(data, 'img_b.jpg'), 80, 60, 'jpeg');
    await writeImage(path.join(data, 'sub', 'img_c.png'), 96, 72);
    const out = await fresh('g-out');
    const summary = await run(twoClass, {
      data,
      outputDir: out,
      classes: ['person', 'Cars'],
      recursive: true,
      format: ['yolo', 'coco'],
      saveVisuals: true,
    });

    assert.equal(summary.annotated, 3);
    assert.equal(summary.failed, 0);
    assert.deepEqual(summary.classes, ['person', 'Cars']);
    assert.deepEqual(summary.objectsPerClass, { person: 3, Cars: 3 });
    const keys = ['img_a', 'img_b', 'sub/img_c'];
    const exts = ['.png', '.jpg', '.png'];
    assert.deepEqual(
      await list(out),
      [
        '.annotate/records/img_a.json',
        '.annotate/records/img_b.json',
        '.annotate/records/sub/img_c.json',
        '.annotate/state.json',
        'annotations/instances.json',
        'classes.txt',
        'data.yaml',
        ...keys.map((k, i) => `images/${k}${exts[i]}`),
        ...keys.map((k) => `labels/${k}.txt`),
        ...keys.map((k, i) => `visuals/${k}${exts[i]}`),
      ].sort(),
    );
    // Ids follow the given classes: person 0, "Cars" 1 (the model's "car" maps to it).
    for (const k of keys) assert.equal(await readText(path.join(out, 'labels', `${k}.txt`)), `1 ${CAR_LINE}\n0 ${PERSON_LINE}\n`);
    for (const [i, k] of keys.entries()) {
      const src = path.join(data, `${k}${exts[i]}`);
      assert.ok((await fs.readFile(path.join(out, 'images', `${k}${exts[i]}`))).equals(await fs.readFile(src)), 'images are copies');
    }
    assert.equal(
      await readText(path.join(out, 'data.yaml')),
      `# Ultralytics dataset written by \`florence2 annotate\` (Florence-2 auto-annotation).\npath: ${out}\ntrain: images\nval: images\nnc: 2\nnames:\n  0: person\n  1: Cars\n`,
    );
    assert.equal(await readText(path.join(out, 'classes.txt')), 'person\nCars\n');

    const coco = await readJson(path.join(out, 'annotations', 'instances.json'));
    checkCocoRules(coco);
    assert.deepEqual(coco.images, [
      { id: 1, file_name: 'img_a.png', width: 64, height: 48 },
      { id: 2, file_name: 'img_b.jpg', width: 80, height: 60 },
      { id: 3, file_name: 'sub/img_c.png', width: 96, height: 72 },
    ]);
    assert.deepEqual(
      coco.categories.map((c: any) => [c.id, c.name]),
      [
        [1, 'person'],
        [2, 'Cars'],
      ],
    );
    assert.equal(coco.annotations.length, 6);
    // car on 64x48: bins 100..400 → x 6.432..25.632, y 4.824..19.224.
    assert.deepEqual(coco.annotations[0], {
      id: 1,
      image_id: 1,
      category_id: 2,
      bbox: [6.43, 4.82, 19.2, 14.4],
      area: 276.48,
      iscrowd: 0,
      segmentation: [[6.43, 4.82, 25.63, 4.82, 25.63, 19.22, 6.43, 19.22]],
      score: 1,
    });

    // Visuals: exactly the drawing of each record, on an image of the source's size, with something drawn.
    for (const [i, k] of keys.entries()) {
      const rec: ImageRecord = await readJson(path.join(out, '.annotate', 'records', `${k}.json`));
      const src = await fs.readFile(path.join(data, `${k}${exts[i]}`));
      const visual = await fs.readFile(path.join(out, 'visuals', `${k}${exts[i]}`));
      assert.ok(visual.equals((await renderVisual(src, rec, summary.classes)).data), `${k}: visual is the record's drawing`);
      const [a, b] = await Promise.all([
        sharp(src).raw().toBuffer({ resolveWithObject: true }),
        sharp(visual).raw().toBuffer({ resolveWithObject: true }),
      ]);
      assert.deepEqual([b.info.width, b.info.height], [a.info.width, a.info.height]);
      assert.ok(!a.data.equals(b.data), 'boxes were drawn');
    }
  });

  it('empty label files, --min-box-size and a train/val split', async () => {
    const data = path.join(root, 's-data');
    // On 64x48 both boxes are under 15 px on one side (car 19.2x14.4, person 12.8x33.6); on 128x96 both pass.
    for (const [name, w, h] of [
      ['a', 64, 48],
      ['b', 128, 96],
      ['c', 64, 48],
      ['d', 128, 96],
    ] as const)
      await writeImage(path.join(data, `${name}.png`), w, h);
    const out = await fresh('s-out');
    const summary = await run(twoClass, { data, outputDir: out, classes: ['car', 'person'], minBoxSize: 15, split: 0.5 });
    assert.equal(summary.filtered, 4);
    assert.equal(summary.emptyImages, 2);
    const splits = assignSplits(['a', 'b', 'c', 'd'], 0.5);
    assert.equal([...splits.values()].filter((s) => s === 'train').length, 2);
    for (const [key, subset] of splits) {
      assert.ok(existsSync(path.join(out, 'images', subset, `${key}.png`)), `${key} in images/${subset}`);
      const expected = key === 'b' || key === 'd' ? `0 ${CAR_LINE}\n1 ${PERSON_LINE}\n` : '';
      assert.equal(await readText(path.join(out, 'labels', subset, `${key}.txt`)), expected, `${key} labels`);
    }
    assert.match(await readText(path.join(out, 'data.yaml')), /\ntrain: images\/train\nval: images\/val\n/);
  });

  it('modes: <OD> without classes, od-filter, open-vocabulary per class', async () => {
    const data = path.join(root, 'm-data');
    await writeImage(path.join(data, 'x.png'), 64, 48);
    const od = await fresh('m-od');
    await run(twoClass, { data, outputDir: od });
    assert.equal(await readText(path.join(od, 'classes.txt')), 'car\nperson\n');
    assert.equal(await readText(path.join(od, 'labels', 'x.txt')), `0 ${CAR_LINE}\n1 ${PERSON_LINE}\n`);

    const filter = await fresh('m-filter');
    const s = await run(twoClass, { data, outputDir: filter, classes: ['people'], mode: 'od-filter' });
    assert.equal(await readText(path.join(filter, 'labels', 'x.txt')), `0 ${PERSON_LINE}\n`);
    assert.equal(s.unmatched, 1);

    const ovd = await fresh('m-ovd');
    await run(twoClass, { data, outputDir: ovd, classes: ['car', 'person'], mode: 'open-vocabulary' });
    // Each class prompt's answer belongs to that class (the script answers both boxes to both prompts).
    assert.equal(await readText(path.join(ovd, 'labels', 'x.txt')), `0 ${CAR_LINE}\n0 ${PERSON_LINE}\n1 ${CAR_LINE}\n1 ${PERSON_LINE}\n`);
  });

  it('YOLO-seg and COCO polygons from region and referring-expression segmentation', async () => {
    const data = path.join(root, 'seg-data');
    await writeImage(path.join(data, 'x.png'), 64, 48);
    const tri = '0.100500 0.100500 0.400500 0.400500 0.100500 0.400500';

    const region = await fresh('seg-region');
    await run(triangle, { data, outputDir: region, format: ['yolo-seg', 'coco'] });
    assert.equal(await readText(path.join(region, 'labels', 'x.txt')), `0 ${tri}\n`);
    const coco = await readJson(path.join(region, 'annotations', 'instances.json'));
    checkCocoRules(coco);
    const [a] = coco.annotations;
    assert.deepEqual(a.segmentation, [[6.43, 4.82, 25.63, 19.22, 6.43, 19.22]]);
    assert.equal(a.area, 138.24, 'area of the polygon (half the box)');

    const referring = await fresh('seg-referring');
    await run(triangle, { data, outputDir: referring, format: 'yolo-seg', classes: ['car', 'dog'], segmentation: 'referring' });
    assert.equal(await readText(path.join(referring, 'labels', 'x.txt')), `0 ${tri}\n1 ${tri}\n`);
  });

  it('a folder with corrupt and non-image files: the rest annotated, the bad ones reported', async () => {
    const data = path.join(root, 'bad-data');
    await writeImage(path.join(data, 'good1.png'), 64, 48);
    const jpeg = await fs.readFile(await writeImage(path.join(data, 'good2.jpg'), 96, 72, 'jpeg'));
    // A truncated JPEG has a valid header: it fails only when decoded, inside a batch with good images.
    await fs.writeFile(path.join(data, 'truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 3)));
    await fs.writeFile(path.join(data, 'fake.png'), 'this is not a png');
    await fs.writeFile(path.join(data, 'empty.png'), '');
    await fs.writeFile(path.join(data, 'notes.txt'), 'not an image');
    await fs.mkdir(path.join(data, 'folder'));
    const out = await fresh('bad-out');
    const summary = await run(twoClass, { data, outputDir: out, classes: ['car'] });
    assert.equal(summary.annotated, 2);
    assert.deepEqual(
      summary.failures.map((f) => path.basename(f.path)),
      ['empty.png', 'fake.png', 'truncated.jpg'],
    );
    for (const f of summary.failures) assert.ok(f.error.length > 0);
    assert.deepEqual(
      summary.ignored.map((f) => path.basename(f.path)),
      ['notes.txt'],
    );
    assert.deepEqual(
      (await list(out)).filter((p) => p.startsWith('labels/')),
      ['labels/good1.txt', 'labels/good2.txt'],
    );
    assert.equal(await readText(path.join(out, 'labels', 'good2.txt')), `0 ${CAR_LINE}\n`);

    const cli = await runCli([data, '--output', await fresh('bad-cli'), '--model', twoClassDir, '--classes', 'car', '--json']);
    assert.equal(cli.code, 1, 'exit 1: some images failed');
    const json = JSON.parse(cli.stdout);
    assert.equal(json.annotated, 2);
    assert.equal(json.failed, 3);
  });

  it('aborted after 3 images and resumed: the same bytes as an uninterrupted run', async () => {
    const data = path.join(root, 'r-data');
    for (let i = 0; i < 7; i++)
      await writeImage(path.join(data, `f${i}.${i % 3 === 0 ? 'jpg' : 'png'}`), 64 + 8 * i, 48, i % 3 === 0 ? 'jpeg' : 'png');
    const out = path.join(root, 'r-out');
    const options: AnnotateOptions = {
      data,
      outputDir: out,
      classes: ['car', 'person'],
      format: ['yolo', 'coco'],
      saveVisuals: true,
      split: 0.7,
      batchSize: 2,
      concurrency: 2,
    };
    const full = await run(twoClass, options);
    const expected = await snapshot(out);
    await fs.rm(out, { recursive: true });

    const controller = new AbortController();
    const first = await run(twoClass, { ...options, signal: controller.signal, onProgress: (p) => p.done === 3 && controller.abort() });
    assert.equal(first.interrupted, true);
    assert.equal(first.annotated, 3);
    assert.equal((await list(path.join(out, '.annotate', 'records'))).length, 3, 'exactly the committed images are done');
    assert.ok(!existsSync(path.join(out, '.annotate', 'tmp')), 'no temporary files left');

    const resumed = await run(twoClass, options);
    assert.equal(resumed.skipped, 3);
    assert.equal(resumed.annotated, 4);
    assertSameSnapshot(await snapshot(out), expected);
    const strip = (s: AnnotationSummary) => ({ ...s, elapsedMs: 0, imagesPerSecond: 0, annotated: 0, skipped: 0 });
    assert.deepEqual(strip(resumed), strip(full), 'the same summary but for timing and what this run did');
  });

  it('killed with SIGKILL mid-run and resumed: the same bytes as an uninterrupted run', async function () {
    const data = path.join(root, 'k-data');
    for (let i = 0; i < 12; i++) await writeImage(path.join(data, `k${String(i).padStart(2, '0')}.png`), 64 + 4 * i, 48);
    const out = path.join(root, 'k-out');
    const args = [
      data,
      '--output',
      out,
      '--model',
      twoClassDir,
      '--classes',
      'car,person',
      '--format',
      'yolo,coco',
      '--visuals',
      '--batch-size',
      '1',
      '--no-progress',
    ];
    assert.equal((await runCli(args)).code, 0);
    const expected = await snapshot(out);
    await fs.rm(out, { recursive: true });

    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'src', 'cli', 'annotate.ts'), ...args], {
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const recordsDir = path.join(out, '.annotate', 'records');
    for (;;) {
      const recorded = existsSync(recordsDir) ? (await fs.readdir(recordsDir)).length : 0;
      if (recorded >= 2 || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    const done = (await fs.readdir(recordsDir)).length;
    assert.ok(done >= 2 && done < 12, `killed part-way (${done} of 12 done)`);

    const resumed = await runCli([...args, '--json']);
    assert.equal(resumed.code, 0);
    assert.equal(JSON.parse(resumed.stdout).skipped, done);
    assertSameSnapshot(await snapshot(out), expected);
  });

  it('resume refuses other settings and foreign folders; --overwrite starts over; missing files are restored', async () => {
    const data = path.join(root, 'o-data');
    await writeImage(path.join(data, 'a.png'), 64, 48);
    await writeImage(path.join(data, 'b.png'), 64, 48);
    const out = await fresh('o-out');
    await run(twoClass, { data, outputDir: out, classes: ['car'] });
    await assert.rejects(
      run(twoClass, { data, outputDir: out, classes: ['person'] }),
      (e: unknown) => e instanceof DatasetError && /classes/.test(e.message),
    );
    const foreign = await fresh('o-foreign');
    await fs.mkdir(foreign);
    await fs.writeFile(path.join(foreign, 'mine.txt'), 'keep me');
    await assert.rejects(run(twoClass, { data, outputDir: foreign, overwrite: true }), /not a florence2 annotate output/);
    assert.equal(await readText(path.join(foreign, 'mine.txt')), 'keep me');

    // Visuals asked for only on the resume, and a deleted label file, are made from the records.
    await fs.rm(path.join(out, 'labels', 'a.txt'));
    const again = await run(twoClass, { data, outputDir: out, classes: ['car'], saveVisuals: true });
    assert.equal(again.skipped, 2);
    assert.equal(await readText(path.join(out, 'labels', 'a.txt')), `0 ${CAR_LINE}\n`);
    assert.ok(existsSync(path.join(out, 'visuals', 'a.png')) && existsSync(path.join(out, 'visuals', 'b.png')));

    const over = await run(twoClass, { data, outputDir: out, classes: ['person'], overwrite: true });
    assert.deepEqual([over.annotated, over.skipped], [2, 0]);
    assert.equal(await readText(path.join(out, 'labels', 'a.txt')), `0 ${PERSON_LINE}\n`);
    assert.ok(!existsSync(path.join(out, 'visuals')), 'overwrite removed the old visuals');
  });

  it('save: false returns the records and writes nothing', async () => {
    const data = path.join(root, 'n-data');
    await writeImage(path.join(data, 'a.png'), 64, 48);
    const s = await run(twoClass, { data, save: false, classes: ['person'] });
    assert.equal(s.outputDir, null);
    assert.equal(s.records!.length, 1);
    assert.deepEqual(
      s.records![0].instances.map((i) => [i.classId, i.label]),
      [[0, 'person']],
    );
    assert.deepEqual(await fs.readdir(data), ['a.png']);
  });
});

describe('annotate: open-set class ids, batching and inputs (fake backend)', () => {
  let root: string;
  // Image width → objects. Sorted by name, first sightings are dog (a), cat (b), bird (d).
  const scene = {
    40: [{ label: 'dog', box: [1, 1, 20, 20] as [number, number, number, number] }],
    44: [
      { label: 'cat', box: [2, 2, 30, 20] as [number, number, number, number] },
      { label: 'Dogs', box: [0, 0, 10, 10] as [number, number, number, number] },
    ],
    48: [],
    52: [
      { label: 'bird', box: [5, 5, 25, 25] as [number, number, number, number], score: 0.3 },
      { label: 'a cat', box: [0, 0, 52, 40] as [number, number, number, number] },
    ],
  };
  const widths = [40, 44, 48, 52, 40, 52, 44, 48, 40];
  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'annotate-fake-'));
    for (const [i, w] of widths.entries()) await writeImage(path.join(root, 'data', `i${i}.png`), w, 40);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const labelsOf = async (out: string) => {
    const snap = await snapshot(path.join(out, 'labels'));
    return Object.fromEntries([...snap].map(([k, v]) => [k, v.toString()]));
  };

  it('ids follow first sight in input order, whatever the completion order, and persist across runs', async () => {
    const data = path.join(root, 'data');
    const backend = new FakeBackend(scene, 3, 3);
    const outA = path.join(root, 'a');
    const a = await new AutoAnnotator({ backend }).annotate({ data, outputDir: outA, format: ['yolo', 'coco'], saveVisuals: true });
    assert.deepEqual(a.classes, ['dog', 'cat', 'bird']);
    assert.ok(backend.maxBatch > 1, 'requests of several images share backend calls');
    assert.equal(
      await readText(path.join(outA, 'labels', 'i1.txt')),
      '1 0.363636 0.275000 0.636364 0.450000\n0 0.113636 0.125000 0.227273 0.250000\n',
    );
    checkCocoRules(await readJson(path.join(outA, 'annotations', 'instances.json')));

    // One request at a time gives the same ids.
    const outB = path.join(root, 'b');
    await new AutoAnnotator({ backend: new FakeBackend(scene, 1, 1) }).annotate({
      data,
      outputDir: outB,
      format: ['yolo', 'coco'],
      saveVisuals: true,
    });
    assertSameSnapshot(
      await snapshot(outB),
      await snapshot(outA).then(
        (s) => new Map([...s].map(([k, v]) => [k, k === 'data.yaml' ? Buffer.from(v.toString().replace(outA, outB)) : v])),
      ),
    );

    // A first run on one image without dogs, then on all: the earlier ids stay, dog is appended.
    const outC = path.join(root, 'c');
    const partial = await new AutoAnnotator({ backend }).annotate({ data: path.join(data, 'i3.png'), outputDir: outC });
    assert.deepEqual(partial.classes, ['bird', 'cat']);
    const all = await new AutoAnnotator({ backend }).annotate({ data, outputDir: outC });
    assert.deepEqual(all.classes, ['bird', 'cat', 'dog']);
    assert.equal(all.skipped, 1, 'i3 (same source, same key) was done by the first run');
    assert.equal(await readText(path.join(outC, 'labels', 'i0.txt')), '2 0.262500 0.262500 0.475000 0.475000\n');
  });

  it('aborted and resumed with out-of-order completions: identical dataset', async () => {
    const data = path.join(root, 'data');
    const out = path.join(root, 'r');
    const options: AnnotateOptions = { data, outputDir: out, format: ['yolo', 'coco'], split: 0.6, saveVisuals: true, minScore: 0.5 };
    await new AutoAnnotator({ backend: new FakeBackend(scene, 2, 3) }).annotate(options);
    const expected = await snapshot(out);
    const labels = await labelsOf(out);
    await fs.rm(out, { recursive: true });
    for (const k of [1, 4]) {
      const controller = new AbortController();
      const s = await new AutoAnnotator({ backend: new FakeBackend(scene, 2, 3) }).annotate({
        ...options,
        signal: controller.signal,
        onProgress: (p) => p.done === k && controller.abort(),
      });
      assert.equal(s.interrupted, true);
    }
    await new AutoAnnotator({ backend: new FakeBackend(scene, 2, 3) }).annotate(options);
    assert.deepEqual(await labelsOf(out), labels);
    const train = await readJson(path.join(out, 'annotations', 'instances_train.json'));
    const val = await readJson(path.join(out, 'annotations', 'instances_val.json'));
    checkCocoRules(train);
    checkCocoRules(val);
    assert.equal(train.images.length + val.images.length, widths.length);
    for (const im of train.images)
      assert.ok(existsSync(path.join(out, 'images', 'train', im.file_name)), 'file_name is relative to the split folder');
    assertSameSnapshot(await snapshot(out), expected);
  });

  it('a .txt list and a glob as inputs', async () => {
    const listFile = path.join(root, 'list.txt');
    await fs.writeFile(listFile, 'data/i0.png\ndata/i2.png\n');
    const out = path.join(root, 'l');
    const s = await new AutoAnnotator({ backend: new FakeBackend(scene) }).annotate({
      data: [listFile, path.join(root, 'data', 'i[13].png')],
      outputDir: out,
      link: true,
    });
    assert.equal(s.annotated, 4);
    assert.equal(await fs.readlink(path.join(out, 'images', 'i0.png')), path.join(root, 'data', 'i0.png'), '--link makes symlinks');
    assert.deepEqual(await fs.readdir(path.join(out, 'labels')), ['i0.txt', 'i1.txt', 'i2.txt', 'i3.txt']);
    assert.equal(await readText(path.join(out, 'labels', 'i2.txt')), '', 'an image without objects has an empty label file');
  });
});

describe('annotate: CLI', () => {
  it('--server takes HOST:PORT, dns: names and address lists; anything else is a usage error naming the flag', async () => {
    for (const t of [
      'h:1',
      '127.0.0.1:50051',
      '[::1]:50051',
      'dns:///florence2-server-headless.ml.svc:50051',
      'dns://10.96.0.10/f.ml.svc:50051',
    ])
      assert.ok(isServerTarget(t), t);
    for (const t of ['ipv4:127.0.0.1:50051,127.0.0.1:50052', 'ipv6:[::1]:50051,[::1]:50052']) assert.ok(isServerTarget(t), t);
    for (const t of ['h', 'h:0', 'h:65536', 'dns:///h', 'ipv4:127.0.0.1', 'ipv4:127.0.0.1:1,', 'ipv4:h:1', 'http://h:1', 'a b:1'])
      assert.ok(!isServerTarget(t), t);
    const r = await runCli(['x', '-o', 'y', '--server', 'http://h:1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--server must be HOST:PORT, dns:\/\/\/NAME:PORT or ipv4:ADDR:PORT,ADDR:PORT,\.\.\., got "http:\/\/h:1"/);
  });

  it('help, usage errors, and an unreachable server', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: florence2 annotate DATA\.\.\. --output DIR/);
    assert.equal((await runCli(['x'])).code, 2);
    assert.equal((await runCli(['x', '-o', 'y', '--bogus'])).code, 2);
    assert.equal((await runCli(['x', '-o', 'y', '--split', '1.5'])).code, 2);
    assert.equal((await runCli(['x', '-o', 'y', '--format', 'voc'])).code, 2);
    assert.equal((await runCli(['x', '-o', 'y', '--server', 'h:1', '--model', 'm'])).code, 2);
    assert.equal((await runCli(['x', '-o', 'y', '--token', 't'])).code, 2, '--token needs --server');
    const dir = mkdtempSync(path.join(tmpdir(), 'annotate-cli-'));
    try {
      await writeImage(path.join(dir, 'a.png'), 16, 16);
      // Port 9 (discard) on loopback: nothing listens there, so the server cannot be reached.
      const remote = await runCli([dir, '-o', path.join(dir, 'out'), '--server', '127.0.0.1:9']);
      assert.equal(remote.code, 2);
      assert.match(remote.stderr, /cannot reach the florence2 server at 127\.0\.0\.1:9/);
      assert.ok(!existsSync(path.join(dir, 'out')), 'nothing written without a backend');
      // No model given: the default Hub model, which offline mode may not download.
      const noModel = await runCli([dir, '-o', path.join(dir, 'out2')], { FLORENCE2_OFFLINE: '1', HF_HUB_CACHE: path.join(dir, 'home') });
      assert.equal(noModel.code, 2);
      assert.match(noModel.stderr, /no model: .*offline mode is on/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
