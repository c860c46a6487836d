/**
 * The image corpus of the fuzz suite: small valid images of every accepted format (built with
 * sharp), header bombs that declare far more pixels than they carry, the magic bytes of refused
 * formats, and the mutations (truncation, bit flips, header overwrites) applied to the valid ones.
 */
import { createHash } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';

/**
 * What the server must make of an image:
 * - `valid`: decodes; `width`/`height` as the server sees them (after EXIF orientation).
 * - `maybe`: a mutation of a valid image, or a header under the pixel limit with too little data:
 *   it may still decode, or be refused as INVALID_ARGUMENT.
 * - `invalid`: never decodes (refused format, pixel bomb, empty, garbage): INVALID_ARGUMENT.
 */
export type ImageVerdict = { kind: 'valid'; width: number; height: number } | { kind: 'maybe' } | { kind: 'invalid' };

export interface CorpusImage {
  name: string;
  bytes: Buffer;
  verdict: ImageVerdict;
}

const digest = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** Verdicts by content, so a request's image can be judged after a protobuf round trip. */
export class ImageRegistry {
  private readonly byHash = new Map<string, { name: string; verdict: ImageVerdict }>();
  add(img: CorpusImage): CorpusImage {
    const key = digest(img.bytes);
    const known = this.byHash.get(key);
    // The same bytes reached two ways (e.g. a truncation at the full length): the more certain verdict wins.
    if (!known || known.verdict.kind === 'maybe') this.byHash.set(key, { name: img.name, verdict: img.verdict });
    return img;
  }
  /** Unknown bytes are not an image (random bytes, zeros, text). */
  verdict(bytes: Uint8Array): ImageVerdict {
    return this.byHash.get(digest(bytes))?.verdict ?? { kind: 'invalid' };
  }
  name(bytes: Uint8Array): string {
    return this.byHash.get(digest(bytes))?.name ?? `bytes[${bytes.length}]`;
  }
}

function noisy(width: number, height: number, channels: 3 | 4 = 3, pageHeight?: number) {
  return sharp({
    create: {
      width,
      height,
      channels,
      background: { r: 120, g: 90, b: 200, alpha: 0.6 },
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
      ...(pageHeight ? { pageHeight } : {}),
    },
  });
}

/** Size as the server's decoder sees it: EXIF orientation applied. */
async function orientedSize(bytes: Buffer): Promise<{ width: number; height: number }> {
  const { info } = await sharp(bytes, { autoOrient: true }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height };
}

/** Small valid images of every accepted format and several encodings each. */
export async function validImages(avif: boolean): Promise<CorpusImage[]> {
  const specs: [string, () => Promise<Buffer>][] = [
    ['png-rgb-64x48', () => noisy(64, 48).png().toBuffer()],
    ['png-rgba-33x17', () => noisy(33, 17, 4).png().toBuffer()],
    ['png-grey16-20x20', () => noisy(20, 20).greyscale().png().toColourspace('grey16').toBuffer()],
    ['png-palette-40x30', () => noisy(40, 30).png({ palette: true, colours: 16 }).toBuffer()],
    ['png-interlaced-64x48', () => noisy(64, 48).png({ progressive: true }).toBuffer()],
    ['png-1x1', () => noisy(1, 1).png().toBuffer()],
    ['jpeg-64x48', () => noisy(64, 48).jpeg({ quality: 80 }).toBuffer()],
    ['jpeg-progressive-64x48', () => noisy(64, 48).jpeg({ progressive: true }).toBuffer()],
    ['jpeg-grey-31x23', () => noisy(31, 23).greyscale().jpeg().toBuffer()],
    ['jpeg-exif-rot90-64x48', () => noisy(64, 48).jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ['jpeg-cmyk-24x16', () => noisy(24, 16).toColourspace('cmyk').jpeg().toBuffer()],
    ['webp-lossy-64x48', () => noisy(64, 48).webp({ quality: 70 }).toBuffer()],
    ['webp-lossless-rgba-32x32', () => noisy(32, 32, 4).webp({ lossless: true }).toBuffer()],
    ['webp-animated-32x24x2', () => noisy(32, 48, 3, 24).webp().toBuffer()],
    ['gif-64x48', () => noisy(64, 48).gif().toBuffer()],
    ['gif-animated-32x24x3', () => noisy(32, 72, 3, 24).gif().toBuffer()],
    ['tiff-lzw-64x48', () => noisy(64, 48).tiff({ compression: 'lzw' }).toBuffer()],
    ['tiff-deflate-rgba-20x30', () => noisy(20, 30, 4).tiff({ compression: 'deflate' }).toBuffer()],
    ['tiff-jpeg-64x48', () => noisy(64, 48).tiff({ compression: 'jpeg' }).toBuffer()],
    ['tiff-none-16x16', () => noisy(16, 16).tiff({ compression: 'none' }).toBuffer()],
  ];
  if (avif) specs.push(['avif-64x48', () => noisy(64, 48).avif({ quality: 50, effort: 0 }).toBuffer()]);
  const out: CorpusImage[] = [];
  for (const [name, build] of specs) {
    const bytes = await build();
    out.push({ name, bytes, verdict: { kind: 'valid', ...(await orientedSize(bytes)) } });
  }
  return out;
}

/** The largest image the server accepts at `maxPixels` = 2000 × 2000 (a real, decodable one). */
export async function atLimitImage(maxPixels: number): Promise<CorpusImage> {
  const side = Math.floor(Math.sqrt(maxPixels));
  const bytes = await sharp({ create: { width: side, height: side, channels: 3, background: 'black' } })
    .png()
    .toBuffer();
  return { name: `png-at-limit-${side}x${side}`, bytes, verdict: { kind: 'valid', width: side, height: side } };
}

// --- PNG by hand (for header bombs) ---

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG whose IHDR (with a correct CRC) declares `width` × `height`; its IDAT holds `rows` rows of zeros. */
export function pngWithHeader(width: number, height: number, rows = 1): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width >>> 0, 0);
  ihdr.writeUInt32BE(height >>> 0, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rowBytes = 1 + Math.min(width, 4096) * 3;
  const idat = deflateSync(Buffer.alloc(rowBytes * rows));
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A complete greyscale PNG of zeros, every row present: a real decompression bomb (5000×5000 is 25 MB of pixels in a few KB). */
export function pngZeros(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const idat = deflateSync(Buffer.alloc((width + 1) * height), { level: 9 });
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** The offset of the first JPEG start-of-frame marker (SOF0..SOF15 except DHT/JPG/DAC). */
function jpegSof(bytes: Buffer): number {
  for (let i = 2; i + 9 < bytes.length;) {
    if (bytes[i] !== 0xff) return -1;
    const marker = bytes[i + 1];
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return i;
    i += 2 + bytes.readUInt16BE(i + 2);
  }
  return -1;
}

function patched(bytes: Buffer, patch: (b: Buffer) => void): Buffer {
  const b = Buffer.from(bytes);
  patch(b);
  return b;
}

/** A JPEG whose SOF declares `width` × `height` (16 bits each). */
export function jpegWithHeader(jpeg: Buffer, width: number, height: number): Buffer {
  const sof = jpegSof(jpeg);
  if (sof < 0) throw new Error('no SOF marker in the JPEG');
  return patched(jpeg, (b) => {
    b.writeUInt16BE(height, sof + 5);
    b.writeUInt16BE(width, sof + 7);
  });
}

/** A GIF whose logical screen and first image descriptor declare `width` × `height`. */
export function gifWithHeader(gif: Buffer, width: number, height: number): Buffer {
  return patched(gif, (b) => {
    b.writeUInt16LE(width, 6);
    b.writeUInt16LE(height, 8);
    // Skip the global colour table, then extensions, to the first image descriptor (0x2c).
    let i = 13;
    if (b[10] & 0x80) i += 3 * (1 << ((b[10] & 7) + 1));
    while (i < b.length && b[i] === 0x21) {
      i += 2;
      while (i < b.length && b[i] !== 0) i += b[i] + 1;
      i += 1;
    }
    if (b[i] === 0x2c) {
      b.writeUInt16LE(width, i + 5);
      b.writeUInt16LE(height, i + 7);
    }
  });
}

/** A TIFF whose ImageWidth (256) and ImageLength (257) tags declare `width` × `height` (little-endian TIFFs from libtiff). */
export function tiffWithHeader(tiff: Buffer, width: number, height: number): Buffer {
  return patched(tiff, (b) => {
    const le = b[0] === 0x49;
    const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const ifd = u32(4);
    const n = u16(ifd);
    for (let k = 0; k < n; k++) {
      const e = ifd + 2 + 12 * k;
      const t = u16(e);
      if (t !== 256 && t !== 257) continue;
      const v = t === 256 ? width : height;
      // Rewrite as a LONG so values over 65535 fit.
      if (le) {
        b.writeUInt16LE(4, e + 2);
        b.writeUInt32LE(1, e + 4);
        b.writeUInt32LE(v, e + 8);
      } else {
        b.writeUInt16BE(4, e + 2);
        b.writeUInt32BE(1, e + 4);
        b.writeUInt32BE(v, e + 8);
      }
    }
  });
}

/** A lossless WebP (VP8L) whose header declares `width` × `height` (14 bits each, so up to 16384). */
export function webpLosslessWithHeader(webp: Buffer, width: number, height: number): Buffer {
  const at = webp.indexOf('VP8L', 12, 'latin1');
  if (at < 0) throw new Error('no VP8L chunk');
  return patched(webp, (b) => {
    const o = at + 8 + 1; // after the chunk header and the 0x2f signature
    const bits = b.readUInt32LE(o);
    const w = (width - 1) & 0x3fff;
    const h = (height - 1) & 0x3fff;
    b.writeUInt32LE(((bits & ~0x0fffffff) | w | (h << 14)) >>> 0, o);
  });
}

/** An extended WebP (VP8X) whose canvas declares `width` × `height` (24 bits each). */
export function webpExtendedWithHeader(webp: Buffer, width: number, height: number): Buffer {
  const at = webp.indexOf('VP8X', 12, 'latin1');
  if (at < 0) throw new Error('no VP8X chunk');
  return patched(webp, (b) => {
    b.writeUIntLE((width - 1) & 0xffffff, at + 12, 3);
    b.writeUIntLE((height - 1) & 0xffffff, at + 15, 3);
  });
}

/** An AVIF whose `ispe` box declares `width` × `height`. */
export function avifWithHeader(avif: Buffer, width: number, height: number): Buffer {
  const at = avif.indexOf('ispe', 0, 'latin1');
  if (at < 0) throw new Error('no ispe box');
  return patched(avif, (b) => {
    b.writeUInt32BE(width >>> 0, at + 8);
    b.writeUInt32BE(height >>> 0, at + 12);
  });
}

function findValid(valid: CorpusImage[], prefix: string): Buffer | undefined {
  return valid.find((v) => v.name.startsWith(prefix))?.bytes;
}

/** Images that declare more pixels than `maxPixels` (invalid) or just under it with almost no data (maybe). */
export function headerBombs(valid: CorpusImage[], maxPixels: number): CorpusImage[] {
  const side = Math.floor(Math.sqrt(maxPixels));
  const out: CorpusImage[] = [];
  const bomb = (name: string, bytes: Buffer | undefined, verdict: ImageVerdict) => {
    if (bytes) out.push({ name, bytes, verdict });
  };
  const invalid: ImageVerdict = { kind: 'invalid' };
  const maybe: ImageVerdict = { kind: 'maybe' };
  bomb('png-bomb-100000x100000', pngWithHeader(100_000, 100_000), invalid);
  bomb('png-bomb-2^31-1 square', pngWithHeader(0x7fffffff, 0x7fffffff), invalid);
  bomb('png-bomb-over-limit-by-1-row', pngWithHeader(side, side + 1), invalid);
  bomb('png-bomb-1x(limit+1)', pngWithHeader(1, maxPixels + 1), invalid);
  bomb('png-0x0', pngWithHeader(0, 0), invalid);
  bomb('png-2^32-1 wide', pngWithHeader(0xffffffff, 1), invalid);
  bomb('png-under-limit-no-data', pngWithHeader(side, side, 1), maybe);
  const jpeg = findValid(valid, 'jpeg-64x48');
  if (jpeg) {
    bomb('jpeg-bomb-65535x65535', jpegWithHeader(jpeg, 65535, 65535), invalid);
    bomb('jpeg-bomb-over-limit', jpegWithHeader(jpeg, side + 1, side), invalid);
    bomb('jpeg-0x0', jpegWithHeader(jpeg, 0, 0), invalid);
    bomb('jpeg-under-limit-no-data', jpegWithHeader(jpeg, side, side), maybe);
  }
  const gif = findValid(valid, 'gif-64x48');
  if (gif) {
    bomb('gif-bomb-65535x65535', gifWithHeader(gif, 65535, 65535), invalid);
    bomb('gif-bomb-over-limit', gifWithHeader(gif, side + 1, side), invalid);
    // giflib reads a 0×0 screen as 1×1.
    bomb('gif-0x0', gifWithHeader(gif, 0, 0), maybe);
  }
  const tiff = findValid(valid, 'tiff-lzw');
  if (tiff) {
    bomb('tiff-bomb-100000x100000', tiffWithHeader(tiff, 100_000, 100_000), invalid);
    bomb('tiff-bomb-2^32-1', tiffWithHeader(tiff, 0xffffffff, 0xffffffff), invalid);
    bomb('tiff-0x0', tiffWithHeader(tiff, 0, 0), invalid);
  }
  const webpLossless = findValid(valid, 'webp-lossless');
  if (webpLossless) bomb('webp-vp8l-bomb-16384x16384', webpLosslessWithHeader(webpLossless, 16384, 16384), invalid);
  const webpX = findValid(valid, 'webp-animated');
  if (webpX) bomb('webp-vp8x-bomb-16777216^2', webpExtendedWithHeader(webpX, 1 << 24, 1 << 24), invalid);
  const avif = findValid(valid, 'avif');
  if (avif) bomb('avif-ispe-bomb-100000x100000', avifWithHeader(avif, 100_000, 100_000), invalid);
  return out;
}

/** Formats the server refuses (or that are not images at all), by their magic bytes or whole files. */
export function refusedFormats(): CorpusImage[] {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="red"/></svg>';
  const svgBomb =
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>' +
    '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><text>&d;</text></svg>';
  const bmp = Buffer.alloc(70);
  bmp.write('BM', 0, 'latin1');
  bmp.writeUInt32LE(70, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(2, 18);
  bmp.writeInt32LE(2, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  const ico = Buffer.from([0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0x68, 4, 0, 0, 22, 0, 0, 0, ...Buffer.alloc(40)]);
  const ftyp = (brand: string) => {
    const b = Buffer.alloc(32);
    b.writeUInt32BE(32, 0);
    b.write('ftyp', 4, 'latin1');
    b.write(brand, 8, 'latin1');
    b.write(`mif1${brand}miaf`, 16, 'latin1');
    return b;
  };
  const invalid: ImageVerdict = { kind: 'invalid' };
  const entries: [string, Buffer][] = [
    ['svg', Buffer.from(svg)],
    ['svg-with-xml-decl', Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>${svg}`)],
    ['svgz', gzipSync(Buffer.from(svg))],
    ['svg-entity-bomb', Buffer.from(svgBomb)],
    ['bmp-2x2', bmp],
    ['ico-16x16', ico],
    ['pdf', Buffer.from('%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n')],
    ['avif-magic-only', ftyp('avif')],
    ['heic-magic-only', ftyp('heic')],
    ['jp2-signature', Buffer.from([0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a, ...Buffer.alloc(20)])],
    ['jxl-codestream', Buffer.from([0xff, 0x0a, 0xfa, 0x7f, 0x01, 0x90, 0x08, 0x06, 0x01, 0x00])],
    ['psd', Buffer.concat([Buffer.from('8BPS'), Buffer.alloc(40)])],
    ['ppm-p6-2x2', Buffer.concat([Buffer.from('P6\n2 2\n255\n'), Buffer.alloc(12, 0x80)])],
    ['pgm-p2-text', Buffer.from('P2\n2 2\n255\n0 1 2 3\n')],
    ['fits', Buffer.from('SIMPLE  =                    T'.padEnd(2880, ' '))],
    ['vips-native-magic', Buffer.from([0x08, 0xf2, 0xa6, 0xb6, ...Buffer.alloc(60)])],
    ['zip', Buffer.from([0x50, 0x4b, 0x03, 0x04, ...Buffer.alloc(26)])],
    ['html', Buffer.from('<!doctype html><img src=x onerror=alert(1)>')],
    ['png-signature-only', Buffer.from(PNG_SIGNATURE)],
    ['jpeg-soi-eoi', Buffer.from([0xff, 0xd8, 0xff, 0xd9])],
    ['gif-magic-only', Buffer.from('GIF89a')],
    ['riff-webp-empty', Buffer.concat([Buffer.from('RIFF'), Buffer.from([4, 0, 0, 0]), Buffer.from('WEBP')])],
    ['tiff-magic-only', Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0])],
    ['tiff-ifd-loop', Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0, 0, 0, 8, 0, 0, 0])],
    ['one-zero-byte', Buffer.alloc(1)],
    ['zeros-4k', Buffer.alloc(4096)],
    ['text', Buffer.from('not an image')],
  ];
  return entries.map(([name, bytes]) => ({ name, bytes, verdict: invalid }));
}

/** How a valid image is damaged. */
export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; bits: number[] }
  | { kind: 'overwrite'; offset: number; bytes: number[] }
  | { kind: 'zero-tail'; from: number };

/** Applies a mutation; positions are taken modulo the image length (so arbitraries need not know it). */
export function mutate(bytes: Buffer, m: Mutation): Buffer {
  const n = bytes.length;
  switch (m.kind) {
    case 'truncate':
      return Buffer.from(bytes.subarray(0, m.at % n));
    case 'flip': {
      const b = Buffer.from(bytes);
      for (const bit of m.bits) b[Math.floor(bit / 8) % n] ^= 1 << (bit % 8);
      return b;
    }
    case 'overwrite': {
      // Header bytes: the offset lands in the first 64 bytes.
      const b = Buffer.from(bytes);
      m.bytes.forEach((v, i) => {
        const at = (m.offset % Math.min(64, n)) + i;
        if (at < n) b[at] = v;
      });
      return b;
    }
    case 'zero-tail': {
      const b = Buffer.from(bytes);
      b.fill(0, m.from % n);
      return b;
    }
  }
}

export function describeMutation(m: Mutation): string {
  switch (m.kind) {
    case 'truncate':
      return `truncate@${m.at}`;
    case 'flip':
      return `flip[${m.bits.join(',')}]`;
    case 'overwrite':
      return `overwrite@${m.offset}=${Buffer.from(m.bytes).toString('hex')}`;
    case 'zero-tail':
      return `zero-tail@${m.from}`;
  }
}
