/**
 * COCO "instances" JSON for an annotated dataset.
 *
 * Conventions chosen here:
 * - Image ids are 1-based in key order; annotation ids are 1-based in image then instance order.
 * - Category id = class id + 1 (COCO reserves 0 for background in most tools); `name` is the class.
 * - `bbox` is `[x, y, width, height]` in absolute pixels of the EXIF-oriented image, 2 decimals,
 *   inside the image.
 * - `segmentation` is always a list of flat polygons (≥ 3 points each): the model's polygons when
 *   segmentation ran, otherwise the box's rectangle, so tools that require a mask still load the file.
 * - `area` is the polygons' area (shoelace, summed over the instance's polygons) when the
 *   segmentation is the model's, and `width * height` of the box otherwise; 4 decimals.
 * - `score` is the model's confidence (6 decimals); `iscrowd` is 0.
 * - `file_name` is relative to the split's image folder (`DIR/images` or `DIR/images/<split>`).
 */
import { polygonArea } from '../geometry';
import type { ImageRecord } from '../types';

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  area: number;
  iscrowd: 0;
  segmentation: number[][];
  score: number;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory: string;
}

export interface CocoDataset {
  info: { description: string; version: string };
  licenses: never[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

const round = (v: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(v * f) / f + 0;
};

export interface CocoOptions {
  /** Use the instances' polygons as `segmentation` (else box rectangles). */
  segmentation: boolean;
  /** Prefix of `record.image` that `file_name` is relative to, e.g. `images/train/`. */
  imageRoot: string;
}

/** Builds the COCO dataset of `records` (in the given order) with all `classes` as categories. */
export function buildCoco(records: readonly ImageRecord[], classes: readonly string[], options: CocoOptions): CocoDataset {
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  records.forEach((rec, i) => {
    const imageId = i + 1;
    const fileName = rec.image.startsWith(options.imageRoot) ? rec.image.slice(options.imageRoot.length) : rec.image;
    images.push({ id: imageId, file_name: fileName, width: rec.width, height: rec.height });
    for (const inst of rec.instances) {
      const x1 = round(inst.box[0], 2);
      const y1 = round(inst.box[1], 2);
      const w = round(round(inst.box[2], 2) - x1, 2);
      const h = round(round(inst.box[3], 2) - y1, 2);
      let segmentation: number[][] = [];
      let area = round(w * h, 4);
      if (options.segmentation && inst.polygons !== undefined) {
        segmentation = inst.polygons.map((p) => p.map((v) => round(v, 2))).filter((p) => p.length >= 6 && polygonArea(p) > 0);
        if (segmentation.length > 0)
          area = round(
            segmentation.reduce((s, p) => s + polygonArea(p), 0),
            4,
          );
      }
      if (segmentation.length === 0)
        segmentation = [[x1, y1, round(x1 + w, 2), y1, round(x1 + w, 2), round(y1 + h, 2), x1, round(y1 + h, 2)]];
      annotations.push({
        id: annotations.length + 1,
        image_id: imageId,
        category_id: inst.classId + 1,
        bbox: [x1, y1, w, h],
        area,
        iscrowd: 0,
        segmentation,
        score: round(inst.score, 6),
      });
    }
  });
  return {
    info: { description: 'Florence-2 auto-annotation (florence2 annotate)', version: '1.0' },
    licenses: [],
    images,
    annotations,
    categories: classes.map((name, id) => ({ id: id + 1, name, supercategory: 'object' })),
  };
}

/** The file text: compact JSON (datasets get large) with a final newline. */
export function cocoJsonText(dataset: CocoDataset): string {
  return `${JSON.stringify(dataset)}\n`;
}
