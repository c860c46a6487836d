/**
 * The train/val split is computed over the images that were annotated, and `data.yaml` never names a
 * folder that does not exist (Ultralytics refuses such a dataset), whatever fails and however a run
 * is resumed. Fake backend: the dataset logic only.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AutoAnnotator, assignSplits, type AnnotateOptions } from '../../src/annotate';
import { FakeBackend, assertSameSnapshot, checkCocoRules, snapshot, writeImage } from './helpers';

const scene = { 40: [{ label: 'car', box: [1, 1, 20, 20] as [number, number, number, number] }] };
const KEYS = ['p0', 'p1', 'p2', 'p3', 'p4'];
/** The key a split of 0.8 over all five puts alone in val: the one a broken image must not take val from. */
const VAL_KEY = [...assignSplits(KEYS, 0.8)].find(([, s]) => s === 'val')![0];

/** The folders data.yaml names for train and val, which must exist and hold images. */
async function namedFolders(out: string): Promise<{ train: string; val: string }> {
  const yaml = await fs.readFile(path.join(out, 'data.yaml'), 'utf8');
  const field = (name: string) => new RegExp(`^${name}: (.+)$`, 'm').exec(yaml)?.[1];
  const train = field('train');
  const val = field('val');
  assert.ok(train !== undefined && val !== undefined, `data.yaml has train and val:\n${yaml}`);
  for (const [name, folder] of [
    ['train', train],
    ['val', val],
  ]) {
    const dir = path.join(out, folder);
    assert.ok(existsSync(dir), `data.yaml ${name}: ${folder} exists`);
  }
  return { train, val };
}

/** Subset of each image as it lies on disk, asserting its label lies beside it and it lies nowhere else. */
async function layout(out: string): Promise<Map<string, string>> {
  const where = new Map<string, string>();
  for (const subset of ['train', 'val']) {
    const dir = path.join(out, 'images', subset);
    if (!existsSync(dir)) continue;
    for (const name of await fs.readdir(dir)) {
      const key = path.parse(name).name;
      assert.ok(!where.has(key), `${key} is in one subset only`);
      where.set(key, subset);
      assert.ok(existsSync(path.join(out, 'labels', subset, `${key}.txt`)), `labels/${subset}/${key}.txt beside its image`);
    }
  }
  for (const subset of ['train', 'val']) {
    const dir = path.join(out, 'labels', subset);
    for (const name of existsSync(dir) ? await fs.readdir(dir) : [])
      assert.equal(where.get(path.parse(name).name), subset, `labels/${subset}/${name} has its image in images/${subset}`);
  }
  return where;
}

describe('annotate: the train/val split (fake backend)', () => {
  let root: string;
  let n = 0;
  const fresh = () => path.join(root, `out${++n}`);
  const run = (options: AnnotateOptions) => new AutoAnnotator({ backend: new FakeBackend(scene, 2, 2) }).annotate(options);

  beforeEach(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'annotate-split-'));
    for (const key of KEYS) await writeImage(path.join(root, 'data', `${key}.png`), 40, 30);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a broken image where val would be: the split is over the four annotated, both subsets on disk', async () => {
    await fs.writeFile(path.join(root, 'data', `${VAL_KEY}.png`), 'not a png');
    const out = fresh();
    const s = await run({ data: path.join(root, 'data'), outputDir: out, split: 0.8, format: ['yolo', 'coco'] });
    assert.equal(s.annotated, 4);
    assert.equal(s.failed, 1);
    const annotated = KEYS.filter((k) => k !== VAL_KEY);
    assert.deepEqual(await layout(out), new Map([...assignSplits(annotated, 0.8)].sort()));
    assert.deepEqual(await namedFolders(out), { train: 'images/train', val: 'images/val' });
    const val = JSON.parse(await fs.readFile(path.join(out, 'annotations', 'instances_val.json'), 'utf8'));
    const train = JSON.parse(await fs.readFile(path.join(out, 'annotations', 'instances_train.json'), 'utf8'));
    checkCocoRules(val);
    assert.equal(val.images.length, 1);
    assert.equal(train.images.length, 3);
    for (const im of val.images) assert.ok(existsSync(path.join(out, 'images', 'val', im.file_name)));
    for (const rec of await fs.readdir(path.join(out, '.annotate', 'records'))) {
      const r = JSON.parse(await fs.readFile(path.join(out, '.annotate', 'records', rec), 'utf8'));
      assert.equal(r.image, `images/${r.split}/${r.key}.png`, 'the record says where its image is');
    }
  });

  it('the broken image fixed and the run resumed: the same dataset as one run over the five', async () => {
    const good = await fs.readFile(path.join(root, 'data', `${VAL_KEY}.png`));
    await fs.writeFile(path.join(root, 'data', `${VAL_KEY}.png`), 'not a png');
    const options = (outputDir: string): AnnotateOptions => ({
      data: path.join(root, 'data'),
      outputDir,
      split: 0.8,
      format: ['yolo', 'coco'],
      saveVisuals: true,
    });
    const resumed = fresh();
    await run(options(resumed));
    await fs.writeFile(path.join(root, 'data', `${VAL_KEY}.png`), good);
    // What a move interrupted before its record was rewritten leaves: a copy in the other subset.
    const [stale] = (await fs.readdir(path.join(resumed, 'images', 'train'))).filter((f) => f !== `${VAL_KEY}.png`);
    await fs.copyFile(path.join(resumed, 'images', 'train', stale), path.join(resumed, 'images', 'val', stale));
    const s = await run(options(resumed));
    assert.equal(s.annotated, 1);
    assert.equal(s.skipped, 4);
    assert.deepEqual(await layout(resumed), new Map([...assignSplits(KEYS, 0.8)].sort()));

    const once = fresh();
    await run(options(once));
    const expected = await snapshot(once);
    const actual = await snapshot(resumed);
    const yaml = actual.get('data.yaml')!.toString().replace(resumed, once);
    actual.set('data.yaml', Buffer.from(yaml));
    assertSameSnapshot(actual, expected);
  });

  it('one image annotated, or none: data.yaml names only folders that exist', async () => {
    for (const key of KEYS.slice(1)) await fs.writeFile(path.join(root, 'data', `${key}.png`), 'not a png');
    for (const ratio of [0.8, 0.2]) {
      const out = fresh();
      const s = await run({ data: path.join(root, 'data'), outputDir: out, split: ratio });
      assert.equal(s.annotated, 1);
      const folders = await namedFolders(out);
      const subset = assignSplits(['p0'], ratio).get('p0')!;
      // With one image there is no second subset: both name the one that holds it.
      assert.deepEqual(folders, { train: `images/${subset}`, val: `images/${subset}` });
      assert.deepEqual(await fs.readdir(path.join(out, folders.train)), ['p0.png']);
    }
    await fs.writeFile(path.join(root, 'data', 'p0.png'), 'not a png');
    for (const split of [0.8, undefined]) {
      const out = fresh();
      const s = await run({ data: path.join(root, 'data'), outputDir: out, split });
      assert.equal(s.annotated, 0);
      await namedFolders(out);
    }
  });
});
