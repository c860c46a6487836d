/** Auto-annotation building blocks: class matching, inputs, prompts, YOLO/COCO formats, data.yaml, split. */
import assert from 'node:assert/strict';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  ClassMap,
  assignSplits,
  buildCoco,
  dataYamlText,
  yamlFolders,
  detectionPrompts,
  globToRegExp,
  parseDetections,
  resolveInputs,
  selectDetections,
  yamlScalar,
  yoloBoxLine,
  yoloLabelText,
  type ImageRecord,
} from '../../src/annotate';
import { checkCocoRules, writeImage } from './helpers';

describe('annotate: classes', () => {
  it('matches phrases up to case, articles and plurals', () => {
    const m = new ClassMap(['car', 'Person', 'bus', 'knife', 'traffic light', 'light', 'box', 'puppy', 'glass'], true);
    const cases: Array<[string, string]> = [
      ['car', 'car'],
      ['Cars', 'car'],
      ['a car', 'car'],
      ['the CAR.', 'car'],
      ['people', 'Person'],
      ['persons', 'Person'],
      ['buses', 'bus'],
      ['knives', 'knife'],
      ['traffic lights', 'traffic light'],
      ['lights', 'light'],
      ['boxes', 'box'],
      ['puppies', 'puppy'],
      ['glasses', 'glass'],
      ['red car', 'car'],
      ['green traffic light', 'traffic light'],
      ['car box', 'box'],
      ['box of cars', 'box'],
      ['person on a bus', 'Person'],
      ['of cars', 'car'],
    ];
    for (const [phrase, cls] of cases) assert.equal(m.names[m.match(phrase)], cls, phrase);
    assert.equal(m.match('dog'), -1);
    assert.equal(m.match(''), -1);
  });

  it('open maps append new names and only match exactly (no partial words)', () => {
    const m = new ClassMap();
    assert.equal(m.resolve('Dog'), 0);
    assert.equal(m.resolve('dogs'), 0);
    assert.equal(m.resolve('cat'), 1);
    assert.equal(m.resolve('black dog'), 2, 'open-set labels are kept as they are');
    assert.deepEqual(m.names, ['dog', 'cat', 'black dog']);
    const resumed = new ClassMap(m.names);
    assert.equal(resumed.resolve('cats'), 1);
  });

  it('refuses duplicate classes', () => {
    assert.throws(() => new ClassMap(['car', 'Cars'], true), /same class/);
    assert.throws(() => new ClassMap(['car', ' '], true), /empty/);
  });
});

describe('annotate: inputs', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'annotate-inputs-'));
    await writeImage(path.join(dir, 'a', 'x.png'), 8, 8);
    await writeImage(path.join(dir, 'a', 'y.jpg'), 8, 8, 'jpeg');
    await writeImage(path.join(dir, 'a', 'sub', 'z.png'), 8, 8);
    await writeImage(path.join(dir, 'b', 'x.png'), 8, 8);
    await writeImage(path.join(dir, 'b', 'x.jpg'), 8, 8, 'jpeg');
    await fs.writeFile(path.join(dir, 'a', 'notes.txt'), 'hi');
    await fs.writeFile(path.join(dir, 'list.txt'), '# images\na/x.png\n\nb/x.png\nmissing.png\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a folder: images sorted, non-images ignored, subfolders only when recursive', async () => {
    const flat = await resolveInputs(path.join(dir, 'a'));
    assert.deepEqual(
      flat.images.map((i) => i.key),
      ['x', 'y'],
    );
    assert.deepEqual(
      flat.ignored.map((i) => path.basename(i.path)),
      ['notes.txt'],
    );
    const deep = await resolveInputs('a', { cwd: dir, recursive: true });
    assert.deepEqual(
      deep.images.map((i) => [i.key, i.ext]),
      [
        ['sub/z', '.png'],
        ['x', '.png'],
        ['y', '.jpg'],
      ],
    );
  });

  it('globs', async () => {
    assert.deepEqual(
      (await resolveInputs(path.join(dir, '*/x.*'))).images.map((i) => i.key),
      ['a/x', 'b/x', 'b/x_png'],
      'b/x.jpg sorts first and keeps the name',
    );
    assert.deepEqual(
      (await resolveInputs('a/**/*.png', { cwd: dir })).images.map((i) => i.key),
      ['sub/z', 'x'],
    );
    assert.deepEqual(
      (await resolveInputs('{a,b}/x.png', { cwd: dir })).images.map((i) => i.key),
      ['a/x', 'b/x'],
    );
    assert.ok(globToRegExp('**/*.jpg').test('a/b/c.jpg'));
    assert.ok(globToRegExp('**/*.jpg').test('c.jpg'));
    assert.ok(!globToRegExp('*.jpg').test('a/c.jpg'));
    assert.ok(globToRegExp('img[0-9].png').test('img3.png'));
  });

  it('a .txt list: paths relative to the list, name clashes disambiguated, missing files reported', async () => {
    const r = await resolveInputs(path.join(dir, 'list.txt'));
    assert.deepEqual(
      r.images.map((i) => [i.key, path.relative(dir, i.source)]),
      [
        ['x', path.join('a', 'x.png')],
        ['x_png', path.join('b', 'x.png')],
      ],
    );
    assert.deepEqual(
      r.missing.map((m) => path.basename(m.path)),
      ['missing.png'],
    );
  });

  it('a single image, several inputs, the output folder excluded', async () => {
    const r = await resolveInputs([path.join(dir, 'a', 'y.jpg'), path.join(dir, 'a')], {
      exclude: path.join(dir, 'a', 'sub'),
      recursive: true,
    });
    assert.deepEqual(
      r.images.map((i) => i.key),
      ['x', 'y'],
    );
  });
});

describe('annotate: prompting', () => {
  it('plans prompts per mode', () => {
    const classes = new ClassMap(['car', 'person', 'dog'], true);
    assert.deepEqual(detectionPrompts(null, 'grounding'), [{ task: '<OD>' }]);
    assert.deepEqual(detectionPrompts(classes, 'grounding'), [{ task: '<CAPTION_TO_PHRASE_GROUNDING>', text: 'car<and>person<and>dog' }]);
    assert.deepEqual(
      detectionPrompts(classes, 'grounding', { classesPerPrompt: 2 }).map((p) => p.text),
      ['car<and>person', 'dog'],
    );
    assert.deepEqual(detectionPrompts(classes, 'od-filter'), [{ task: '<OD>' }]);
    assert.deepEqual(
      detectionPrompts(classes, 'open-vocabulary').map((p) => [p.task, p.text, p.classId]),
      [
        ['<OPEN_VOCABULARY_DETECTION>', 'car', 0],
        ['<OPEN_VOCABULARY_DETECTION>', 'person', 1],
        ['<OPEN_VOCABULARY_DETECTION>', 'dog', 2],
      ],
    );
    assert.deepEqual(detectionPrompts(classes, 'grounding', { segmentation: 'referring' })[1], {
      task: '<REFERRING_EXPRESSION_SEGMENTATION>',
      text: 'person',
      classId: 1,
    });
    assert.throws(() => detectionPrompts(null, 'grounding', { segmentation: 'referring' }), /needs classes/);
  });

  it('parses every result shape and filters', () => {
    const boxes = parseDetections(
      { task: '<OD>' },
      {
        bboxes: [
          [1, 2, 30, 40],
          [0, 0, 5, 5],
        ],
        labels: ['cars', 'tree'],
        scores: [0.8, 0.4],
      },
    );
    assert.deepEqual(
      boxes.map((d) => [d.label, d.score]),
      [
        ['cars', 0.8],
        ['tree', 0.4],
      ],
    );
    const ovd = parseDetections(
      { task: '<OPEN_VOCABULARY_DETECTION>', text: 'car', classId: 2 },
      {
        bboxes: [],
        bboxes_labels: [],
        polygons: [[[1, 1, 9, 1, 9, 9]]],
        polygons_labels: ['car'],
        bboxes_scores: [],
        polygons_scores: [0.5],
      },
    );
    assert.deepEqual(ovd, [{ label: 'car', classId: 2, score: 0.5, box: [1, 1, 9, 9], polygons: [[1, 1, 9, 1, 9, 9]] }]);
    const seg = parseDetections(
      { task: '<REFERRING_EXPRESSION_SEGMENTATION>', text: 'dog', classId: 0 },
      { polygons: [[[0, 0, 4, 0, 4, 4]]], labels: [''], scores: [0.7] },
    );
    assert.equal(seg[0].label, 'dog');

    const classes = new ClassMap(['car'], true);
    const size = { width: 20, height: 20 };
    const sel = selectDetections(
      [
        { label: 'car', score: 0.9, box: [-5, 2, 10, 30] }, // clipped to [0, 2, 10, 20]
        { label: 'Cars', score: 0.9, box: [0, 2, 10, 20] }, // the same box again: dropped
        { label: 'tree', score: 0.9, box: [0, 0, 5, 5] }, // no such class
        { label: 'car', score: 0.2, box: [0, 0, 10, 10] }, // score
        { label: 'car', score: 0.9, box: [0, 0, 2, 10] }, // size
        { label: 'car', score: 0.9, box: [25, 25, 30, 30] }, // outside: empty after clipping
      ],
      classes,
      size,
      { minScore: 0.5, minBoxSize: 3 },
    );
    assert.deepEqual(sel.kept, [{ label: 'car', classId: 0, score: 0.9, box: [0, 2, 10, 20] }]);
    assert.equal(sel.unmatched, 1);
    assert.equal(sel.filtered, 3);
  });
});

describe('annotate: formats', () => {
  const rec: ImageRecord = {
    key: 'a',
    source: '/src/a.png',
    image: 'images/a.png',
    split: null,
    width: 200,
    height: 100,
    instances: [
      { classId: 1, label: 'car', score: 0.87654321, box: [10, 20, 110, 70] },
      {
        classId: 0,
        label: 'dog',
        score: 0.5,
        box: [0, 0, 200, 100],
        polygons: [
          [0, 0, 200, 0, 100, 100],
          [0, 50, 10, 50, 10, 60],
        ],
      },
    ],
  };

  it('YOLO lines: normalised, clipped, 6 decimals; empty file for no objects', () => {
    assert.equal(yoloBoxLine(3, [10, 20, 110, 70], { width: 200, height: 100 }), '3 0.300000 0.450000 0.500000 0.500000');
    assert.equal(yoloBoxLine(0, [-10, -10, 300, 50], { width: 200, height: 100 }), '0 0.500000 0.250000 1.000000 0.500000');
    assert.equal(yoloLabelText(rec, 'detect'), '1 0.300000 0.450000 0.500000 0.500000\n0 0.500000 0.500000 1.000000 1.000000\n');
    // Segmentation: the largest polygon of an instance; the box's rectangle without polygons.
    assert.equal(
      yoloLabelText(rec, 'segment'),
      '1 0.050000 0.200000 0.550000 0.200000 0.550000 0.700000 0.050000 0.700000\n0 0.000000 0.000000 1.000000 0.000000 0.500000 1.000000\n',
    );
    assert.equal(yoloLabelText({ ...rec, instances: [] }, 'detect'), '');
  });

  it('COCO: boxes as rectangles with area w*h, or polygons with their area', () => {
    const boxes = buildCoco([rec], ['dog', 'car'], { segmentation: false, imageRoot: 'images/' });
    checkCocoRules(boxes);
    assert.deepEqual(boxes.images, [{ id: 1, file_name: 'a.png', width: 200, height: 100 }]);
    assert.deepEqual(boxes.categories, [
      { id: 1, name: 'dog', supercategory: 'object' },
      { id: 2, name: 'car', supercategory: 'object' },
    ]);
    assert.deepEqual(boxes.annotations[0], {
      id: 1,
      image_id: 1,
      category_id: 2,
      bbox: [10, 20, 100, 50],
      area: 5000,
      iscrowd: 0,
      segmentation: [[10, 20, 110, 20, 110, 70, 10, 70]],
      score: 0.876543,
    });
    const seg = buildCoco([rec], ['dog', 'car'], { segmentation: true, imageRoot: 'images/' });
    checkCocoRules(seg);
    assert.equal(seg.annotations[1].area, 10000 + 50);
    assert.deepEqual(seg.annotations[1].segmentation, rec.instances[1].polygons);
  });

  it('data.yaml for Ultralytics: path, train, val, names as index → name', () => {
    assert.equal(
      dataYamlText('/data/out', ['car', 'traffic light', 'yes', '3d', 'a: b'], yamlFolders([], false)),
      [
        '# Ultralytics dataset written by `florence2 annotate` (Florence-2 auto-annotation).',
        'path: /data/out',
        'train: images',
        'val: images',
        'nc: 5',
        'names:',
        '  0: car',
        '  1: traffic light',
        '  2: "yes"',
        '  3: "3d"',
        '  4: "a: b"',
        '',
      ].join('\n'),
    );
    const both = yamlFolders([{ split: 'train' }, { split: 'val' }], true);
    assert.match(dataYamlText('/d', [], both), /train: images\/train\nval: images\/val\nnc: 0\nnames: \{\}\n$/);
    // A subset without images is never named: the other stands in for it.
    assert.deepEqual(yamlFolders([{ split: 'train' }], true), { train: 'images/train', val: 'images/train' });
    assert.deepEqual(yamlFolders([{ split: 'val' }], true), { train: 'images/val', val: 'images/val' });
    assert.deepEqual(yamlFolders([], true), { train: 'images/train', val: 'images/train' });
    assert.equal(yamlScalar('C:\\data'), '"C:\\\\data"');
  });

  it('split: deterministic, the asked fraction, never an empty subset', () => {
    const keys = Array.from({ length: 10 }, (_, i) => `img${i}`);
    const a = assignSplits(keys, 0.8);
    const b = assignSplits([...keys].reverse(), 0.8);
    assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
    assert.equal([...a.values()].filter((v) => v === 'train').length, 8);
    assert.equal([...assignSplits(['a', 'b'], 0.99).values()].filter((v) => v === 'val').length, 1);
    assert.deepEqual([...assignSplits(['a'], 0.5).values()], ['train']);
  });
});
