/** Test helpers for auto-annotation: generated images, folder snapshots, a COCO rule checker, a fake backend. */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { AnnotationBackend, BackendRequest, BackendResult, BackendRunOptions } from '../../src/annotate';
import { polygonArea } from '../../src/annotate/geometry';
import { annotate as annotateCli } from '../../src/cli/annotate';
import { captureOutput } from '../helpers/capture-output';

/** Two classes: car [100,100,400,400] and person [500,200,700,900] (bins), for grounding and `<OD>`. */
export const TWO_CLASS_SCRIPT = 'car<loc_100><loc_100><loc_400><loc_400>person<loc_500><loc_200><loc_700><loc_900>';
/** `<OD>` gives a car box [100,100,400,400]; the segmentation tasks a triangle (100,100) (400,400) (100,400). */
export const TRIANGLE_SCRIPT = 'car<loc_100><loc_100><loc_400><loc_400><loc_100><loc_400>';

/** The YOLO lines the two-class script gives on any image (bin centres are image-relative). */
export const CAR_LINE = '0.250500 0.250500 0.300000 0.300000';
export const PERSON_LINE = '0.600500 0.550500 0.200000 0.700000';

/** Writes a generated image (a gradient, so encoders cannot collapse it) and returns its path. */
export async function writeImage(file: string, width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<string> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      raw[o] = (x * 255) / width;
      raw[o + 1] = (y * 255) / height;
      raw[o + 2] = ((x + y) * 7) & 255;
    }
  }
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  await fs.mkdir(path.dirname(file), { recursive: true });
  await (format === 'png' ? img.png() : img.jpeg({ quality: 90 })).toFile(file);
  return file;
}

/** Every file under `dir` (relative POSIX path → bytes; a symlink → `link:` + its target). */
export async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p).split(path.sep).join('/');
      if (e.isDirectory()) await walk(p);
      else if (e.isSymbolicLink()) out.set(rel, Buffer.from(`link:${await fs.readlink(p)}`));
      else out.set(rel, await fs.readFile(p));
    }
  };
  await walk(dir);
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Asserts two snapshots are byte-identical, naming the first difference. */
export function assertSameSnapshot(actual: Map<string, Buffer>, expected: Map<string, Buffer>): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()], 'the same files');
  for (const [rel, bytes] of expected) assert.ok(actual.get(rel)!.equals(bytes), `${rel} is byte-identical`);
}

/**
 * Checks a COCO instances file against the format's rules: unique image, annotation and category
 * ids; references to existing images and categories; `bbox` = [x, y, w, h] with w, h > 0 inside the
 * image; `area` = w * h for rectangle segmentations, the polygons' area otherwise; `iscrowd` 0;
 * `segmentation` a list of flat polygons of ≥ 6 coordinates (even count) inside the image; categories
 * with a numeric id and a name; every image with a positive integer size and a file name.
 */
export function checkCocoRules(coco: any): void {
  const eps = 1e-6;
  for (const key of ['images', 'annotations', 'categories']) assert.ok(Array.isArray(coco[key]), `${key} is a list`);
  const ids = (list: any[], what: string) => {
    const set = new Set<number>();
    for (const x of list) {
      assert.ok(Number.isInteger(x.id), `${what} id is an integer`);
      assert.ok(!set.has(x.id), `${what} id ${x.id} is unique`);
      set.add(x.id);
    }
    return set;
  };
  const images = new Map<number, any>(coco.images.map((i: any) => [i.id, i]));
  ids(coco.images, 'image');
  const categories = ids(coco.categories, 'category');
  ids(coco.annotations, 'annotation');
  for (const im of coco.images) {
    assert.ok(typeof im.file_name === 'string' && im.file_name.length > 0, 'image file_name');
    assert.ok(Number.isInteger(im.width) && im.width > 0 && Number.isInteger(im.height) && im.height > 0, 'image size');
  }
  for (const c of coco.categories) assert.ok(typeof c.name === 'string' && c.name.length > 0, 'category name');
  for (const a of coco.annotations) {
    const im = images.get(a.image_id);
    assert.ok(im !== undefined, `annotation ${a.id}: image_id ${a.image_id} exists`);
    assert.ok(categories.has(a.category_id), `annotation ${a.id}: category_id ${a.category_id} exists`);
    assert.equal(a.iscrowd, 0);
    assert.equal(a.bbox.length, 4);
    const [x, y, w, h] = a.bbox;
    assert.ok(w > 0 && h > 0, `annotation ${a.id}: bbox has a size`);
    assert.ok(
      x >= 0 && y >= 0 && x + w <= im.width + eps && y + h <= im.height + eps,
      `annotation ${a.id}: bbox ${a.bbox} inside ${im.width}x${im.height}`,
    );
    assert.ok(Array.isArray(a.segmentation) && a.segmentation.length > 0, `annotation ${a.id}: segmentation is a list of polygons`);
    for (const poly of a.segmentation) {
      assert.ok(Array.isArray(poly) && poly.length >= 6 && poly.length % 2 === 0, `annotation ${a.id}: polygon with ≥ 3 points`);
      for (let i = 0; i < poly.length; i += 2) {
        assert.ok(
          poly[i] >= 0 && poly[i] <= im.width + eps && poly[i + 1] >= 0 && poly[i + 1] <= im.height + eps,
          `annotation ${a.id}: polygon inside the image`,
        );
      }
    }
    const rect = a.segmentation.length === 1 && a.segmentation[0].length === 8 && Math.abs(polygonArea(a.segmentation[0]) - w * h) < 1e-3;
    const expectedArea = rect ? w * h : a.segmentation.reduce((s: number, p: number[]) => s + polygonArea(p), 0);
    assert.ok(Math.abs(a.area - expectedArea) < 1e-3, `annotation ${a.id}: area ${a.area} = ${expectedArea}`);
    assert.ok(typeof a.score === 'number' && a.score > 0 && a.score <= 1, 'score in (0, 1]');
  }
}

/** What the fake backend answers for an image of a given width: `<OD>` labels, each with a box. */
export type FakeScene = Record<number, Array<{ label: string; box: [number, number, number, number]; score?: number }>>;

/**
 * A backend that answers `<OD>` / grounding from the image's width (looked up in `scene`), after a
 * pseudo-random delay so calls finish out of order; counts calls and can fail on chosen widths.
 */
export class FakeBackend implements AnnotationBackend {
  calls = 0;
  requests = 0;
  maxBatch = 0;
  private seed = 1;

  constructor(
    private readonly scene: FakeScene,
    readonly preferredBatchSize = 3,
    readonly preferredConcurrency = 3,
  ) {}

  async run(requests: readonly BackendRequest[], _options?: BackendRunOptions): Promise<Array<BackendResult | Error>> {
    this.calls++;
    this.requests += requests.length;
    this.maxBatch = Math.max(this.maxBatch, requests.length);
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    await new Promise((r) => setTimeout(r, this.seed % 15));
    return Promise.all(
      requests.map(async (req): Promise<BackendResult | Error> => {
        const meta = await sharp(req.image)
          .metadata()
          .catch(() => null);
        if (meta === null || !meta.width || !meta.height) return new Error('corrupt image');
        const objects = this.scene[meta.width] ?? [];
        return {
          imageSize: { width: meta.width, height: meta.height },
          result: {
            bboxes: objects.map((o) => [...o.box]),
            labels: objects.map((o) => o.label),
            scores: objects.map((o) => o.score ?? 0.9),
          },
        };
      }),
    );
  }
}

/** Runs the CLI in process, capturing stdout and stderr. */
export function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return captureOutput(() => annotateCli(argv, env));
}
