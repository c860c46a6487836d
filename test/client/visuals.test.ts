/** drawResult and its helpers: stable colours, escaping, sizes, formats, orientation, result → scene. */
import { strict as assert } from 'node:assert';
import sharp from 'sharp';
import { defaultLineWidth, drawResult, escapeXml, labelColor, overlaySvg, PALETTE, type VisualInstance } from '../../src/visuals/draw';
import { visualsFromResult } from '../../src/visuals/instances';
import type { ResponseMeta } from 'florence2-client';

const META: ResponseMeta = {
  timings: { queueMs: 0, preprocessMs: 0, visionMs: 0, encoderMs: 0, decodeMs: 0, postprocessMs: 0, totalMs: 0 },
  promptTokens: 0,
  generatedTokens: 0,
  rawText: '',
  imageWidth: 0,
  imageHeight: 0,
  requestId: '',
  device: '',
};

const plain = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: { r: 200, g: 200, b: 200 } } });

async function pixels(buf: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function pixel(p: { data: Buffer; width: number; channels: number }, x: number, y: number): number[] {
  const i = (y * p.width + x) * p.channels;
  return [...p.data.subarray(i, i + 3)];
}

describe('visuals', () => {
  it('one stable colour per label, from the palette', () => {
    assert.equal(labelColor('car'), labelColor('car'));
    assert.ok((PALETTE as readonly string[]).includes(labelColor('car')));
    const colours = new Set(['car', 'person', 'dog', 'cat', 'bus', 'truck', 'tree', 'sign'].map(labelColor));
    assert.ok(colours.size >= 5, 'labels spread over the palette');
  });

  it('escapes markup in labels and drops characters XML forbids', () => {
    assert.equal(escapeXml('a & b <c> "d" \'e\'\u0001'), 'a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;');
    const svg = overlaySvg(100, 100, [{ label: '<script>&', box: [10, 10, 50, 50], score: 0.5 }]);
    assert.ok(svg.includes('&lt;script&gt;&amp; 0.50'));
    assert.ok(!svg.includes('<script>'));
    assert.ok(svg.includes('DejaVu Sans'));
  });

  it('line width grows with the image', () => {
    assert.equal(defaultLineWidth(640, 480), 2);
    assert.ok(defaultLineWidth(4000, 3000) >= 10);
  });

  it('draws boxes, quads, polygons and labels; PNG in → PNG of the same size out, pixels changed on the shapes', async () => {
    const input = await plain(320, 240).png().toBuffer();
    const instances: VisualInstance[] = [
      { label: 'car & <bus>', score: 0.93, box: [20, 60, 150, 200] },
      { label: 'HELLO', quad: [180, 30, 300, 30, 300, 80, 180, 80] },
      { label: 'blob', polygons: [[200, 120, 300, 120, 300, 220, 200, 220]] },
      { label: '', box: [5, 5, 15, 15] },
    ];
    const out = await drawResult(input, instances);
    const meta = await sharp(out).metadata();
    assert.equal(meta.format, 'png');
    assert.deepEqual([meta.width, meta.height], [320, 240]);
    const before = await pixels(input);
    const after = await pixels(out);
    assert.notDeepEqual(pixel(after, 20, 130), pixel(before, 20, 130), 'box edge drawn');
    assert.notDeepEqual(pixel(after, 250, 170), pixel(before, 250, 170), 'polygon filled');
    assert.notDeepEqual(pixel(after, 180, 55), pixel(before, 180, 55), 'quad edge drawn');
    assert.deepEqual(pixel(after, 100, 230), pixel(before, 100, 230), 'untouched elsewhere');
  });

  it('JPEG in → JPEG out; format can be forced; a caption band is drawn at the bottom', async () => {
    const jpeg = await plain(200, 100).jpeg().toBuffer();
    assert.equal((await sharp(await drawResult(jpeg, [])).metadata()).format, 'jpeg');
    const forced = await drawResult(jpeg, [], {
      format: 'png',
      caption: 'A car parked in front of a building, with a long caption that wraps.',
    });
    assert.equal((await sharp(forced).metadata()).format, 'png');
    const p = await pixels(forced);
    assert.ok(pixel(p, 1, 98)[0] < 120, 'dark band at the bottom');
    assert.ok(pixel(p, 1, 2)[0] > 150, 'top untouched');
  });

  it('draws on the upright image (EXIF orientation applied first)', async () => {
    // Stored 200x100 with orientation 6: displayed 100x200, which is what server coordinates refer to.
    const rotated = await plain(200, 100).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await drawResult(rotated, [{ label: 'x', box: [10, 150, 90, 190] }], { format: 'png' });
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.width, meta.height], [100, 200]);
    const p = await pixels(out);
    assert.notDeepEqual(pixel(p, 10, 170), [200, 200, 200]);
  });

  it('turns results into scenes', () => {
    const det = visualsFromResult({ family: 'detect', boxes: [{ x1: 1, y1: 2, x2: 3, y2: 4, label: 'car' }], meta: META });
    assert.deepEqual(det, { instances: [{ label: 'car', box: [1, 2, 3, 4] }] });
    const ocr = visualsFromResult({
      family: 'ocr',
      text: 'x',
      lines: [{ points: [1, 2, 3, 4, 5, 6, 7, 8], text: 'HI', score: 0.9 }],
      meta: META,
    });
    assert.deepEqual(ocr.instances, [{ label: 'HI', score: 0.9, quad: [1, 2, 3, 4, 5, 6, 7, 8] }]);
    assert.deepEqual(visualsFromResult({ family: 'caption', text: 'a car<loc_1><loc_2>', meta: META }), {
      instances: [],
      caption: 'a car',
    });
    assert.deepEqual(visualsFromResult({ family: 'region', text: 'car<loc_1>', meta: META }, { region: { x1: 1, y1: 2, x2: 3, y2: 4 } }), {
      instances: [{ label: 'car', box: [1, 2, 3, 4] }],
    });
    const seg = visualsFromResult({
      family: 'segment',
      instances: [{ polygons: [[1, 2, 3, 4, 5, 6]], label: '', score: 0.5 }],
      meta: META,
    });
    assert.deepEqual(seg.instances, [{ label: '', score: 0.5, polygons: [[1, 2, 3, 4, 5, 6]] }]);
  });
});
