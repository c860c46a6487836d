/**
 * Draws results on their image: boxes, quadrilaterals and polygons with their labels and scores,
 * one stable colour per label, as an SVG overlay composited by sharp. The input is a plain list of
 * {@link VisualInstance}s so any producer (the CLI, auto-annotation) can use it.
 */
import sharp from 'sharp';

/** One thing to draw. Coordinates are pixels of the image after EXIF orientation. */
export interface VisualInstance {
  /** Class, phrase or text; '' draws the shape without a label. */
  label: string;
  /** Shown with two decimals after the label when given. */
  score?: number;
  /** [x1, y1, x2, y2]. */
  box?: readonly [number, number, number, number];
  /** x1, y1, ..., x4, y4 (a quadrilateral, e.g. an OCR text line). */
  quad?: readonly number[];
  /** Polygons as flat x, y lists; drawn filled with a light tint. */
  polygons?: readonly (readonly number[])[];
}

/** Drawing options. */
export interface DrawOptions {
  /** Output format; default JPEG for JPEG input, PNG for anything else. */
  format?: 'png' | 'jpeg';
  /** Text without geometry (a caption, OCR text) drawn in a band at the bottom. */
  caption?: string;
  /** Stroke width in pixels; default scales with the image size. */
  lineWidth?: number;
  /** Label font size in pixels; default scales with the image size. */
  fontSize?: number;
  /** JPEG quality (default 90). */
  quality?: number;
}

/** 20 colours that stay distinguishable on photos (Tableau-like, a little darkened for white text). */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#393b79',
  '#ad494a',
  '#637939',
  '#8c6d31',
  '#843c39',
  '#7b4173',
  '#3182bd',
  '#e6550d',
  '#31a354',
  '#756bb1',
] as const;

/** The colour of a label: FNV-1a hash into the palette, so a label keeps its colour across images and runs. */
export function labelColor(label: string): string {
  let h = 0x811c9dc5;
  for (const ch of label) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return PALETTE[h % PALETTE.length];
}

/** Text for SVG: XML-escaped, without characters XML forbids (they would make librsvg reject the overlay). */
export function escapeXml(text: string): string {
  return (
    text
      // eslint-disable-next-line no-control-regex -- control characters are what SVG text must not carry
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

/** Stroke width for an image: 2 px up to ~640 px, growing with the longer side so boxes stay visible when scaled down. */
export function defaultLineWidth(width: number, height: number): number {
  return Math.max(2, Math.round(Math.max(width, height) / 320));
}

/** Label font size for an image: at least 12 px, about 1/50 of the longer side. */
export function defaultFontSize(width: number, height: number): number {
  return Math.max(12, Math.round(Math.max(width, height) / 50));
}

/** White or black text, whichever reads better on the colour. */
function textColorOn(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000000' : '#ffffff';
}

const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 10) / 10) : '0');
const points = (flat: readonly number[]) => {
  const out: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push(`${fmt(flat[i])},${fmt(flat[i + 1])}`);
  return out.join(' ');
};

/** Approximate advance width of DejaVu Sans (≈0.6 em per character); enough to size label backgrounds. */
const textWidth = (text: string, fontSize: number) => Math.ceil([...text].length * fontSize * 0.62);

function labelText(inst: VisualInstance): string {
  const score = inst.score !== undefined && Number.isFinite(inst.score) ? ` ${inst.score.toFixed(2)}` : '';
  return `${inst.label}${score}`.trim();
}

/** The top-left anchor of an instance's label: the box corner, or the first vertex of the shape. */
function anchorOf(inst: VisualInstance): [number, number] | null {
  if (inst.box) return [Math.min(inst.box[0], inst.box[2]), Math.min(inst.box[1], inst.box[3])];
  const flat = inst.quad ?? inst.polygons?.find((p) => p.length >= 2);
  if (!flat || flat.length < 2) return null;
  // Topmost vertex (leftmost among equals): labels sit above the shape like they do for boxes.
  let [x, y] = [flat[0], flat[1]];
  for (let i = 2; i + 1 < flat.length; i += 2) if (flat[i + 1] < y || (flat[i + 1] === y && flat[i] < x)) [x, y] = [flat[i], flat[i + 1]];
  return [x, y];
}

/** Builds the SVG overlay for an image of the given size. */
export function overlaySvg(width: number, height: number, instances: readonly VisualInstance[], options: DrawOptions = {}): string {
  const lw = options.lineWidth ?? defaultLineWidth(width, height);
  const fs = options.fontSize ?? defaultFontSize(width, height);
  const pad = Math.max(2, Math.round(fs / 5));
  const shapes: string[] = [];
  const labels: string[] = [];
  for (const inst of instances) {
    const color = labelColor(inst.label);
    for (const poly of inst.polygons ?? []) {
      if (poly.length < 6) continue;
      shapes.push(
        `<polygon points="${points(poly)}" fill="${color}" fill-opacity="0.3" stroke="${color}" stroke-width="${lw}" stroke-linejoin="round"/>`,
      );
    }
    if (inst.quad && inst.quad.length >= 8) {
      shapes.push(
        `<polygon points="${points(inst.quad.slice(0, 8))}" fill="none" stroke="${color}" stroke-width="${lw}" stroke-linejoin="round"/>`,
      );
    }
    if (inst.box) {
      const [x1, y1, x2, y2] = inst.box;
      shapes.push(
        `<rect x="${fmt(Math.min(x1, x2))}" y="${fmt(Math.min(y1, y2))}" width="${fmt(Math.abs(x2 - x1))}" height="${fmt(Math.abs(y2 - y1))}" fill="none" stroke="${color}" stroke-width="${lw}"/>`,
      );
    }
    const text = labelText(inst);
    const anchor = anchorOf(inst);
    if (text === '' || anchor === null) continue;
    const w = textWidth(text, fs) + 2 * pad;
    const h = fs + 2 * pad;
    // Above the shape when it fits, else just inside its top edge; never off the right edge.
    const x = Math.max(0, Math.min(anchor[0], width - w));
    const y = anchor[1] - h >= 0 ? anchor[1] - h : Math.max(0, Math.min(anchor[1], height - h));
    labels.push(
      `<rect x="${fmt(x)}" y="${fmt(y)}" width="${w}" height="${h}" fill="${color}" fill-opacity="0.85"/>` +
        `<text x="${fmt(x + pad)}" y="${fmt(y + pad + fs * 0.8)}" fill="${textColorOn(color)}">${escapeXml(text)}</text>`,
    );
  }
  const band = options.caption ? captionBand(width, height, options.caption, fs) : '';
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<g>${shapes.join('')}</g>` +
    `<g font-family="DejaVu Sans, sans-serif" font-size="${fs}">${labels.join('')}${band}</g>` +
    `</svg>`
  );
}

/** A dark band at the bottom with the caption wrapped to the image width (at most a third of its height). */
function captionBand(width: number, height: number, caption: string, fs: number): string {
  const pad = Math.round(fs / 2);
  const perLine = Math.max(8, Math.floor((width - 2 * pad) / (fs * 0.62)));
  const maxLines = Math.max(1, Math.floor(height / 3 / (fs * 1.25)));
  const lines: string[] = [];
  let line = '';
  for (const word of caption.replace(/\s+/g, ' ').trim().split(' ')) {
    for (const piece of word.match(new RegExp(`.{1,${perLine}}`, 'gu')) ?? []) {
      if (line === '') line = piece;
      else if (line.length + 1 + piece.length <= perLine) line += ` ${piece}`;
      else {
        lines.push(line);
        line = piece;
      }
    }
  }
  if (line !== '') lines.push(line);
  if (lines.length === 0) return '';
  if (lines.length > maxLines) {
    lines.length = maxLines;
    lines[maxLines - 1] = `${lines[maxLines - 1].slice(0, perLine - 1)}…`;
  }
  const bandH = Math.round(lines.length * fs * 1.25 + 2 * pad);
  const top = height - bandH;
  const text = lines
    .map((l, i) => `<text x="${pad}" y="${fmt(top + pad + fs * (0.95 + i * 1.25))}" fill="#ffffff">${escapeXml(l)}</text>`)
    .join('');
  return `<rect x="0" y="${top}" width="${width}" height="${bandH}" fill="#000000" fill-opacity="0.6"/>${text}`;
}

/**
 * Draws `instances` (and `options.caption`) on the image and returns the encoded result: JPEG for
 * JPEG input, PNG otherwise, unless `options.format` says. The image is auto-oriented first, so
 * the output has the orientation the server's coordinates refer to.
 */
export async function drawResult(
  imageBytes: Buffer | Uint8Array,
  instances: readonly VisualInstance[],
  options: DrawOptions = {},
): Promise<Buffer> {
  const input = Buffer.isBuffer(imageBytes) ? imageBytes : Buffer.from(imageBytes.buffer, imageBytes.byteOffset, imageBytes.byteLength);
  const meta = await sharp(input).metadata();
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new Error('drawResult: the image has no size');
  const svg = Buffer.from(overlaySvg(width, height, instances, options));
  const format = options.format ?? (meta.format === 'jpeg' ? 'jpeg' : 'png');
  // sharp composites after orienting, so the overlay lands on upright pixels (and JPEG is encoded once).
  const img = sharp(input)
    .autoOrient()
    .composite([{ input: svg, top: 0, left: 0 }]);
  return format === 'jpeg' ? img.jpeg({ quality: options.quality ?? 90 }).toBuffer() : img.png().toBuffer();
}
