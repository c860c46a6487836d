/**
 * Florence-2 image preprocessing (contract §4): decode untrusted image bytes into 8-bit RGB, resize to
 * the processor size, rescale, normalize and lay out as CHW float32 `pixel_values`.
 *
 * Two resize back ends:
 * - `'pil'` (default): {@link resizeBicubicPil}, a bit-exact TypeScript re-implementation of Pillow's
 *   `Image.resize(size, BICUBIC)` 8-bit path, which is what the Python reference (HF CLIPImageProcessor)
 *   runs. The vision tower therefore sees exactly the pixels it sees in Python.
 * - `'sharp'`: libvips resize with {@link SHARP_RESIZE_KERNEL} (native, the transformers.js approach),
 *   with its upsampling grid aligned to PIL's; small pixel differences remain (see the unit test).
 */
import sharp from 'sharp';

import type { ImageSize } from './geometry';
export type { ImageSize } from './geometry';

/** A decoded image: tightly packed 8-bit sRGB, row-major HWC, 3 channels, no alpha. */
export interface DecodedImage {
  /** `size.width * size.height * 3` bytes. */
  rgb: Buffer;
  /** Size after EXIF auto-orientation, i.e. as the user sees the image. */
  size: ImageSize;
}

/** Why an image was rejected by {@link decodeImage}. */
export type ImageDecodeErrorReason = 'empty' | 'unsupported_format' | 'corrupt' | 'too_many_pixels';

/** A client-side problem with the supplied image bytes (map to gRPC INVALID_ARGUMENT). */
export class ImageDecodeError extends Error {
  readonly reason: ImageDecodeErrorReason;
  /** For `too_many_pixels`: the configured limit and the image's declared size. */
  readonly maxPixels?: number;
  readonly declaredSize?: ImageSize;

  constructor(reason: ImageDecodeErrorReason, message: string, extra?: { cause?: unknown; maxPixels?: number; declaredSize?: ImageSize }) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ImageDecodeError';
    this.reason = reason;
    if (extra?.maxPixels !== undefined) this.maxPixels = extra.maxPixels;
    if (extra?.declaredSize !== undefined) this.declaredSize = extra.declaredSize;
  }
}

/**
 * Default pixel limit when a caller of {@link preprocess} passes bytes without `maxPixels`: 100 MP
 * (a 300 MB RGB buffer). Servers should configure their own limit.
 */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Decodable container formats, by sharp's `metadata().format` name. SVG (and the other formats a
 * libvips build may carry) are refused: they are not photos, and SVG rendering is a large attack surface.
 * `heif` is accepted only with AV1 compression (AVIF), and only when this sharp build can read it
 * (the prebuilt sharp 0.35 binaries ship libheif + aom, so AVIF decodes; HEIC/HEVC does not).
 */
const ACCEPTED_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

/** Whether this sharp build can decode AVIF from a buffer. */
export const AVIF_SUPPORTED: boolean = sharp.format.heif?.input?.buffer === true;

function toBuffer(bytes: Uint8Array): Buffer {
  // Zero-copy view; sharp only reads it.
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Options for {@link decodeImage}. */
export interface DecodeOptions {
  /** Reject images whose declared width x height exceeds this (checked before decoding). */
  maxPixels: number;
  /**
   * Convert pixels through an embedded ICC profile (e.g. Display P3 phone photos) to sRGB. Default
   * false: the Python reference (PIL `Image.open` + HF processor) feeds the stored values as they are,
   * so ignoring the profile keeps the model's input identical to the reference. transformers.js
   * (sharp defaults) applies it. CMYK images are always converted (with libvips' built-in CMYK profile
   * when the profile is ignored).
   */
  applyIcc?: boolean;
}

/** What an image's header declares, read without decoding pixels. */
export interface ImageHeader {
  /** sharp's format name: jpeg, png, webp, gif, tiff or heif (AVIF). */
  format: string;
  /** Declared size, before EXIF orientation (the pixel count is the same either way). */
  width: number;
  height: number;
}

/**
 * Reads the header only (libvips decodes no pixels for it) and applies the format allowlist and the
 * pixel limit: the one check shared by request validation on the server's main thread and by
 * {@link decodeImage} in the worker, so both refuse exactly the same images.
 *
 * @throws ImageDecodeError (reason `empty`, `unsupported_format`, `corrupt` or `too_many_pixels`).
 */
export async function probeImage(bytes: Uint8Array, maxPixels: number): Promise<ImageHeader> {
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    // Programming error, not client input: sharp treats 0 as "no limit", which must never happen silently.
    throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
  if (bytes.byteLength === 0) throw new ImageDecodeError('empty', 'Image is empty (0 bytes)');
  // The limit is disabled here so that we can report the declared size ourselves.
  let meta: sharp.Metadata;
  try {
    meta = await sharp(toBuffer(bytes), { limitInputPixels: false }).metadata();
  } catch (e) {
    const msg = errorMessage(e);
    if (/unsupported image format/i.test(msg)) {
      throw new ImageDecodeError(
        'unsupported_format',
        'Image format not recognised (supported: JPEG, PNG, WebP, GIF, TIFF' + (AVIF_SUPPORTED ? ', AVIF)' : ')'),
        { cause: e },
      );
    }
    throw new ImageDecodeError('corrupt', `Image header is corrupt: ${msg}`, { cause: e });
  }

  const format = String(meta.format);
  if (!ACCEPTED_FORMATS.has(format) || (format === 'heif' && (!AVIF_SUPPORTED || meta.compression !== 'av1'))) {
    const what = format === 'heif' ? `HEIF/${meta.compression ?? 'unknown'}` : format;
    throw new ImageDecodeError(
      'unsupported_format',
      `Image format '${what}' is not supported (supported: JPEG, PNG, WebP, GIF, TIFF` + (AVIF_SUPPORTED ? ', AVIF)' : ')'),
    );
  }
  const w = meta.width;
  const h = meta.height;
  if (!(w > 0 && h > 0)) throw new ImageDecodeError('corrupt', `Image header declares an invalid size ${w}x${h}`);
  if (w * h > maxPixels) {
    throw new ImageDecodeError('too_many_pixels', `Image is ${w}x${h} = ${w * h} pixels, which exceeds the limit of ${maxPixels} pixels`, {
      maxPixels,
      declaredSize: { width: w, height: h },
    });
  }
  return { format, width: w, height: h };
}

/**
 * Decode image bytes to 8-bit sRGB HWC.
 *
 * Formats: JPEG, PNG, WebP (first frame), GIF (first frame), TIFF (first page), AVIF (see
 * {@link AVIF_SUPPORTED}). EXIF orientation is applied, so `size` is the oriented size (the reference
 * post-processes boxes in the width/height the user sees). Greyscale, CMYK and 16-bit inputs are
 * converted to 8-bit sRGB. Alpha is composited onto white. Embedded ICC profiles are ignored by
 * default, like PIL (see {@link DecodeOptions.applyIcc}).
 *
 * The pixel limit is checked against the header's declared size before any pixel is decoded, and again
 * by libvips (`limitInputPixels`) as a second line of defence.
 *
 * @throws ImageDecodeError for bad input (reason `empty`, `unsupported_format`, `corrupt`, `too_many_pixels`).
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions): Promise<DecodedImage> {
  const { maxPixels } = options;
  await probeImage(bytes, maxPixels);
  const input = toBuffer(bytes);

  try {
    const { data, info } = await sharp(input, {
      limitInputPixels: maxPixels,
      // Reject truncated or broken pixel data, but tolerate libvips *warnings* (e.g. "extraneous bytes
      // before marker"), which many real camera JPEGs trigger and which PIL also accepts.
      failOn: 'error',
      autoOrient: true,
      ignoreIcc: options.applyIcc !== true,
      // Defaults already pick the first frame/page (GIF, WebP, TIFF) or the primary image (HEIF).
    })
      // Alpha: flatten onto white. The reference assumes RGB input (do_convert_rgb null); the usual
      // Python `Image.convert('RGB')` and transformers.js (`RawImage.rgb()`) both just drop alpha,
      // exposing whatever colour is stored under transparent pixels. That colour is undefined in many
      // PNGs (black, or encoder leftovers), so the model would see an arbitrary background; compositing
      // onto white gives what a viewer shows. Opaque images are unaffected.
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      // Greyscale, CMYK and 16-bit (rgb16/grey16) interpretations all become 8-bit sRGB here.
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new ImageDecodeError(
        'corrupt',
        `Image decoded to an unexpected layout (${info.width}x${info.height}, ${info.channels} channels)`,
      );
    }
    return { rgb: data, size: { width: info.width, height: info.height } };
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    const msg = errorMessage(e);
    if (/exceeds pixel limit/i.test(msg)) {
      throw new ImageDecodeError('too_many_pixels', `Image exceeds the limit of ${maxPixels} pixels`, {
        cause: e,
        maxPixels,
      });
    }
    throw new ImageDecodeError('corrupt', `Image data is corrupt or truncated: ${msg}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------------
// PIL-exact bicubic resize
// ---------------------------------------------------------------------------------------------------

/** Fixed-point precision of Pillow's 8-bit resampler (32 bits - 8 for the value - 2 for overflow). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Bicubic convolution kernel, a = -0.5, support 2. Written in the same operation order as Pillow so
 * that the float64 results (and therefore the fixed-point weights) are identical. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per-axis resampling table: for output index i, taps start at `start[i]`, there are `count[i]` of them,
 * with fixed-point weights `weights[i * ksize + t]`. */
interface AxisTable {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

function axisTable(inSize: number, outSize: number): AxisTable {
  const scale = inSize / outSize;
  // Anti-aliasing: when downscaling, the kernel is stretched by the scale factor.
  const filterscale = scale < 1 ? 1 : scale;
  const support = 2.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const inv = 1.0 / filterscale; // Pillow multiplies by the reciprocal; dividing would round differently.
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // C `(int)` truncates toward zero; negatives are clamped to 0 anyway.
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    const n = hi - lo;
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const v = bicubic((t + lo - center + 0.5) * inv);
      w[t] = v;
      sum += v;
    }
    const base = i * ksize;
    for (let t = 0; t < n; t++) {
      const v = sum !== 0 ? w[t] / sum : w[t];
      // Round half away from zero, as `(int)(v * 2^22 ± 0.5)` does in C.
      weights[base + t] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[i] = lo;
    count[i] = n;
  }
  return { ksize, start, count, weights };
}

function resizeHorizontal(src: Uint8Array, inW: number, h: number, outW: number): Uint8Array {
  const { ksize, start, count, weights } = axisTable(inW, outW);
  const out = new Uint8ClampedArray(outW * h * 3); // clamped store = clip8 for integer values
  const inRow = inW * 3;
  const outRow = outW * 3;
  for (let y = 0; y < h; y++) {
    const rowBase = y * inRow;
    let o = y * outRow;
    for (let x = 0; x < outW; x++) {
      const n = count[x];
      const kb = x * ksize;
      let p = rowBase + start[x] * 3;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let t = 0; t < n; t++, p += 3) {
        const k = weights[kb + t];
        // `| 0` keeps V8 on int32 arithmetic. Exact: products and sums stay well inside int32
        // (sum of |weights| < 1.2 * 2^22, values <= 255), as Pillow's `int` accumulators assume.
        s0 = (s0 + src[p] * k) | 0;
        s1 = (s1 + src[p + 1] * k) | 0;
        s2 = (s2 + src[p + 2] * k) | 0;
      }
      // Arithmetic shift = floor division by 2^22, like C's `>>` on a signed int.
      out[o++] = s0 >> PRECISION_BITS;
      out[o++] = s1 >> PRECISION_BITS;
      out[o++] = s2 >> PRECISION_BITS;
    }
  }
  return new Uint8Array(out.buffer);
}

function resizeVertical(src: Uint8Array, w: number, inH: number, outH: number): Uint8Array {
  const { ksize, start, count, weights } = axisTable(inH, outH);
  const rowLen = w * 3;
  const out = new Uint8ClampedArray(rowLen * outH);
  // Accumulate whole rows so every inner loop walks memory contiguously.
  const acc = new Int32Array(rowLen);
  for (let y = 0; y < outH; y++) {
    acc.fill(HALF);
    const n = count[y];
    const kb = y * ksize;
    for (let t = 0; t < n; t++) {
      const k = weights[kb + t];
      const base = (start[y] + t) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += src[base + i] * k;
    }
    const ob = y * rowLen;
    for (let i = 0; i < rowLen; i++) out[ob + i] = acc[i] >> PRECISION_BITS;
  }
  return new Uint8Array(out.buffer);
}

function checkSize(s: ImageSize, what: string): void {
  if (!Number.isSafeInteger(s.width) || !Number.isSafeInteger(s.height) || s.width < 1 || s.height < 1) {
    throw new RangeError(`${what} size must be positive integers, got ${s.width}x${s.height}`);
  }
}

/**
 * Resize 8-bit RGB (HWC) exactly like Pillow's `Image.resize((w, h), Image.BICUBIC)` on an RGB image:
 * separable (horizontal pass, then vertical), Catmull-Rom kernel (a = -0.5) stretched by the scale
 * factor when downscaling, weights normalized and rounded to 22-bit fixed point, each pass rounded and
 * clipped to uint8. A pass whose axis keeps its size is skipped (Pillow does the same; it would be the
 * identity anyway). Same size in and out returns a copy.
 */
export function resizeBicubicPil(rgb: Uint8Array, src: ImageSize, dst: ImageSize): Uint8Array {
  checkSize(src, 'source');
  checkSize(dst, 'destination');
  if (rgb.length !== src.width * src.height * 3) {
    throw new RangeError(`rgb has ${rgb.length} bytes, expected ${src.width}x${src.height}x3 = ${src.width * src.height * 3}`);
  }
  let cur: Uint8Array = rgb;
  if (dst.width !== src.width) cur = resizeHorizontal(cur, src.width, src.height, dst.width);
  if (dst.height !== src.height) cur = resizeVertical(cur, dst.width, src.height, dst.height);
  return cur === rgb ? new Uint8Array(rgb) : cur;
}

// ---------------------------------------------------------------------------------------------------
// sharp resize
// ---------------------------------------------------------------------------------------------------

/**
 * libvips kernel used for `resample: 'sharp'`. For downscaling, libvips' `cubic` reduce is Catmull-Rom
 * (the same a = -0.5 kernel as PIL) stretched by the scale factor like PIL's anti-aliasing, and it was
 * the closest of the sharp kernels to the PIL path (mean abs diff 0.09 vs 0.27 for `mitchell` on a
 * photo-like 1920x1080 -> 768x768). For upscaling libvips ignores the kernel choice (it interpolates
 * with its bicubic interpolator), see {@link resizeSharp} for the sampling-grid fix.
 */
export const SHARP_RESIZE_KERNEL = 'cubic' as const;

/**
 * Resize 8-bit RGB HWC with libvips, ignoring aspect ratio (`fit: 'fill'`), as close to PIL as sharp
 * allows.
 *
 * libvips upsamples output pixel X at input position `X / s - 0.5` (s = out/in), half an output pixel
 * off PIL's centre-aligned `(X + 0.5) / s - 0.5`. That offset alone gave a mean deviation of about 1
 * grey level on photo-like images upscaled 640x480 -> 768x768 (and 70+ on a checkerboard). So each
 * upscaled axis is resampled at twice the target size and only the odd samples are kept: sample
 * `2X + 1` of a `2s` upscale sits at `(2X + 1) / (2s) - 0.5`, exactly PIL's position, with the same
 * Catmull-Rom kernel. Downscaled axes go straight through libvips' reduce, which is already centre
 * aligned.
 */
export async function resizeSharp(rgb: Uint8Array, src: ImageSize, dst: ImageSize): Promise<Uint8Array> {
  checkSize(src, 'source');
  checkSize(dst, 'destination');
  if (rgb.length !== src.width * src.height * 3) {
    throw new RangeError(`rgb has ${rgb.length} bytes, expected ${src.width}x${src.height}x3 = ${src.width * src.height * 3}`);
  }
  if (src.width === dst.width && src.height === dst.height) return new Uint8Array(rgb);
  const fx = dst.width > src.width ? 2 : 1;
  const fy = dst.height > src.height ? 2 : 1;
  const data = await sharp(toBuffer(rgb), { raw: { width: src.width, height: src.height, channels: 3 } })
    .resize(dst.width * fx, dst.height * fy, { kernel: SHARP_RESIZE_KERNEL, fit: 'fill' })
    .raw()
    .toBuffer();
  if (fx === 1 && fy === 1) return data;
  const out = new Uint8Array(dst.width * dst.height * 3);
  const bigRow = dst.width * fx * 3;
  let o = 0;
  for (let y = 0; y < dst.height; y++) {
    let p = (y * fy + fy - 1) * bigRow + (fx - 1) * 3;
    for (let x = 0; x < dst.width; x++, p += fx * 3) {
      out[o++] = data[p];
      out[o++] = data[p + 1];
      out[o++] = data[p + 2];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Config and preprocessing
// ---------------------------------------------------------------------------------------------------

/** Validated `preprocessor_config.json` fields used by Florence-2 (CLIPImageProcessor). */
export interface PreprocessorConfig {
  size: ImageSize;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
  /** PIL resample id; only 3 (BICUBIC) is supported. */
  resample: 3;
}

/** Resize back end: `'pil'` = bit-exact with the Python reference, `'sharp'` = libvips, corrected to PIL's sample positions. */
export type ResampleMode = 'pil' | 'sharp';

/** Options for {@link preprocess}. */
export interface PreprocessOptions {
  /** Target size (768x768 for Florence-2). Aspect ratio is not kept, as in the reference. */
  size: ImageSize;
  mean: readonly number[];
  std: readonly number[];
  rescaleFactor: number;
  /** Default `'pil'`. */
  resample?: ResampleMode;
  /** Defaults true. With `doResize: false` the output has the input image's own size. */
  doResize?: boolean;
  doRescale?: boolean;
  doNormalize?: boolean;
  /** Pixel limit applied when raw bytes are passed. Default {@link DEFAULT_MAX_PIXELS}. */
  maxPixels?: number;
  /** See {@link DecodeOptions.applyIcc}; used when raw bytes are passed. Default false. */
  applyIcc?: boolean;
}

function configError(msg: string): Error {
  return new Error(`preprocessor_config.json: ${msg}`);
}

function readTriple(obj: Record<string, unknown>, key: string, positive: boolean): [number, number, number] {
  const v = obj[key];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw configError(`${key} must be an array of 3 finite numbers, got ${JSON.stringify(v)}`);
  }
  if (positive && !v.every((x) => (x as number) > 0)) throw configError(`${key} values must be > 0`);
  const [a, b, c] = v as number[];
  return [a, b, c];
}

function readBool(obj: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw configError(`${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Validate a parsed `preprocessor_config.json` (CLIPImageProcessor fields). `rescale_factor` defaults
 * to 1/255 (the microsoft repos omit it), `do_*` flags default to true, `resample` to 3. Unsupported
 * settings (`shortest_edge` sizing, center crop, resample other than BICUBIC) are rejected rather than
 * silently ignored.
 */
export function readPreprocessorConfig(json: unknown): PreprocessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw configError('must be a JSON object');
  const obj = json as Record<string, unknown>;

  const size = obj.size as Record<string, unknown> | undefined;
  if (typeof size !== 'object' || size === null) throw configError('size must be an object {height, width}');
  const { height, width } = size;
  if (
    typeof height !== 'number' ||
    typeof width !== 'number' ||
    !Number.isSafeInteger(height) ||
    !Number.isSafeInteger(width) ||
    height < 1 ||
    width < 1
  ) {
    throw configError(`size must have positive integer height and width, got ${JSON.stringify(size)}`);
  }

  const rf = obj.rescale_factor;
  let rescaleFactor = 1 / 255;
  if (rf !== undefined && rf !== null) {
    if (typeof rf !== 'number' || !Number.isFinite(rf) || rf <= 0) {
      throw configError(`rescale_factor must be a positive number, got ${JSON.stringify(rf)}`);
    }
    rescaleFactor = rf;
  }

  const resample = obj.resample ?? 3;
  if (resample !== 3) throw configError(`resample ${JSON.stringify(resample)} is not supported (only 3 = BICUBIC)`);
  if (readBool(obj, 'do_center_crop', false)) throw configError('do_center_crop: true is not supported');

  return {
    size: { width, height },
    imageMean: readTriple(obj, 'image_mean', false),
    imageStd: readTriple(obj, 'image_std', true),
    rescaleFactor,
    doResize: readBool(obj, 'do_resize', true),
    doRescale: readBool(obj, 'do_rescale', true),
    doNormalize: readBool(obj, 'do_normalize', true),
    resample: 3,
  };
}

/** Build {@link PreprocessOptions} from a validated config. */
export function preprocessOptionsFromConfig(
  config: PreprocessorConfig,
  extra: { resample?: ResampleMode; maxPixels?: number; applyIcc?: boolean } = {},
): PreprocessOptions {
  return {
    size: { ...config.size },
    mean: config.imageMean,
    std: config.imageStd,
    rescaleFactor: config.rescaleFactor,
    doResize: config.doResize,
    doRescale: config.doRescale,
    doNormalize: config.doNormalize,
    ...extra,
  };
}

/** Raw image bytes, or an image already decoded by {@link decodeImage}. */
export type ImageInput = Uint8Array | DecodedImage;

/** Result of {@link preprocess}. */
export interface PreprocessedImage {
  /** CHW float32, length `3 * size.height * size.width`. */
  pixelValues: Float32Array;
  /** Size of the (oriented) input image, for post-processing coordinates. */
  originalSize: ImageSize;
  /** Size of `pixelValues` planes. */
  size: ImageSize;
}

/** Result of {@link preprocessBatch}: one `[N, 3, H, W]` tensor; image i starts at `i * 3 * H * W`. */
export interface PreprocessedBatch {
  pixelValues: Float32Array;
  dims: [number, number, number, number];
  originalSizes: ImageSize[];
}

/** Per-channel 256-entry lookup: value -> normalized float32 (computed in float64, stored float32). */
function normalizationTable(options: PreprocessOptions): Float32Array {
  const doRescale = options.doRescale ?? true;
  const doNormalize = options.doNormalize ?? true;
  if (doNormalize && (options.mean.length !== 3 || options.std.length !== 3)) {
    throw new RangeError('mean and std must have 3 entries');
  }
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) {
      let x = v;
      if (doRescale) x = x * options.rescaleFactor;
      if (doNormalize) x = (x - options.mean[c]) / options.std[c];
      lut[c * 256 + v] = x;
    }
  }
  return lut;
}

async function resizedRgb(
  input: ImageInput,
  options: PreprocessOptions,
): Promise<{ rgb: Uint8Array; original: ImageSize; size: ImageSize }> {
  const decoded =
    input instanceof Uint8Array
      ? await decodeImage(input, { maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS, applyIcc: options.applyIcc })
      : input;
  const original = { ...decoded.size };
  checkSize(original, 'image');
  if (decoded.rgb.length !== original.width * original.height * 3) {
    throw new RangeError(`decoded rgb has ${decoded.rgb.length} bytes, expected ${original.width * original.height * 3}`);
  }
  if (options.doResize === false) return { rgb: decoded.rgb, original, size: original };
  const size = { width: options.size.width, height: options.size.height };
  checkSize(size, 'target');
  const rgb =
    (options.resample ?? 'pil') === 'sharp'
      ? await resizeSharp(decoded.rgb, original, size)
      : resizeBicubicPil(decoded.rgb, original, size);
  return { rgb, original, size };
}

/** HWC uint8 -> normalized CHW float32, written into `out` at `offset`. */
function writeChw(rgb: Uint8Array, pixels: number, lut: Float32Array, out: Float32Array, offset: number): void {
  const g = offset + pixels;
  const b = g + pixels;
  for (let i = 0, p = 0; i < pixels; i++, p += 3) {
    out[offset + i] = lut[rgb[p]];
    out[g + i] = lut[256 + rgb[p + 1]];
    out[b + i] = lut[512 + rgb[p + 2]];
  }
}

/**
 * Preprocess one image: decode (if bytes), resize (PIL-exact by default), then per channel
 * `(x * rescaleFactor - mean[c]) / std[c]` in float64, stored as float32 CHW.
 *
 * @throws ImageDecodeError when bytes cannot be decoded.
 */
export async function preprocess(input: ImageInput, options: PreprocessOptions): Promise<PreprocessedImage> {
  const lut = normalizationTable(options);
  const { rgb, original, size } = await resizedRgb(input, options);
  const pixels = size.width * size.height;
  const pixelValues = new Float32Array(3 * pixels);
  writeChw(rgb, pixels, lut, pixelValues, 0);
  return { pixelValues, originalSize: original, size };
}

/**
 * Preprocess N images into one `[N, 3, H, W]` float32 tensor (image i at offset `i * 3 * H * W`).
 * Images are processed one after another to bound peak memory. All outputs must share a size (always
 * true with `doResize`).
 */
export async function preprocessBatch(inputs: readonly ImageInput[], options: PreprocessOptions): Promise<PreprocessedBatch> {
  if (inputs.length === 0) throw new RangeError('preprocessBatch needs at least one image');
  const lut = normalizationTable(options);
  let pixelValues: Float32Array | undefined;
  let dims: [number, number, number, number] = [inputs.length, 3, 0, 0];
  const originalSizes: ImageSize[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const { rgb, original, size } = await resizedRgb(inputs[i], options);
    if (pixelValues === undefined) {
      dims = [inputs.length, 3, size.height, size.width];
      pixelValues = new Float32Array(inputs.length * 3 * size.height * size.width);
    } else if (size.height !== dims[2] || size.width !== dims[3]) {
      throw new RangeError(`image ${i} is ${size.width}x${size.height}, batch is ${dims[3]}x${dims[2]}`);
    }
    const pixels = size.width * size.height;
    writeChw(rgb, pixels, lut, pixelValues, i * 3 * pixels);
    originalSizes.push(original);
  }
  return { pixelValues: pixelValues as Float32Array, dims, originalSizes };
}
