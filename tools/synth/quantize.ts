/**
 * Weight quantization for the synthetic `_int8`, `_uint8`, `_quantized`, `_q4`, `_q4f16` and `_bnb4`
 * variants, in the layouts onnxruntime's kernels read (see README "Variants" for the sources).
 * Each quantizer has a matching dequantizer, so tests can check what a kernel computes against the
 * weights it was given.
 */

/** 8-bit per-tensor quantization: `w ≈ (q - zeroPoint) · scale`. */
export interface Quantized8 {
  q: Int8Array | Uint8Array;
  scale: number;
  zeroPoint: number;
}

/**
 * Per-tensor 8-bit quantization as onnxruntime's dynamic quantizer does it for weights: int8 is
 * symmetric (range [-127, 127], zero point 0); uint8 is asymmetric over [min(0, min), max(0, max)].
 */
export function quantize8(w: Float32Array, signed: boolean): Quantized8 {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i] < lo) lo = w[i];
    if (w[i] > hi) hi = w[i];
  }
  if (signed) {
    const absMax = Math.max(-lo, hi);
    const scale = absMax > 0 ? absMax / 127 : 1;
    const q = new Int8Array(w.length);
    for (let i = 0; i < w.length; i++) q[i] = Math.max(-127, Math.min(127, Math.round(w[i] / scale)));
    return { q, scale: Math.fround(scale), zeroPoint: 0 };
  }
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-lo / scale)));
  const q = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = Math.max(0, Math.min(255, Math.round(w[i] / scale) + zeroPoint));
  return { q, scale: Math.fround(scale), zeroPoint };
}

export function dequantize8({ q, scale, zeroPoint }: Quantized8): Float32Array {
  const out = new Float32Array(q.length);
  const s = Math.fround(scale);
  for (let i = 0; i < q.length; i++) out[i] = (q[i] - zeroPoint) * s;
  return out;
}

/** A [K, N] weight in MatMulNBits' 4-bit layout: `packed` [N, blocks, blockSize/2], `scales` [N · blocks]. */
export interface Quantized4 {
  k: number;
  n: number;
  blockSize: number;
  packed: Uint8Array;
  scales: Float32Array;
}

/**
 * Symmetric 4-bit block quantization along K, per output column (MatMulNBits with no zero points,
 * whose implicit zero point is 8): each block's scale maps the element of largest magnitude to -8,
 * so the block uses the full signed range. Two values per byte, the earlier one in the low nibble.
 * A K that is not a multiple of the block size is padded with zeros.
 */
export function quantize4(w: Float32Array, k: number, n: number, blockSize = 32): Quantized4 {
  if (w.length !== k * n) throw new Error(`quantize4: ${w.length} values for [${k}, ${n}]`);
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(k, k0 + blockSize);
      let extreme = 0;
      for (let r = k0; r < k1; r++) if (Math.abs(w[r * n + col]) > Math.abs(extreme)) extreme = w[r * n + col];
      const scale = Math.fround(extreme !== 0 ? extreme / -8 : 1);
      scales[col * blocks + b] = scale;
      const base = (col * blocks + b) * blob;
      for (let r = k0; r < k1; r++) {
        const q = Math.max(0, Math.min(15, Math.round(w[r * n + col] / scale) + 8));
        const j = r - k0;
        packed[base + (j >> 1)] |= j & 1 ? q << 4 : q;
      }
      // padding rows dequantize to 0: they must hold the zero point
      for (let j = k1 - k0; j < blockSize; j++) packed[base + (j >> 1)] |= j & 1 ? 8 << 4 : 8;
    }
  }
  return { k, n, blockSize, packed, scales };
}

/** The [K, N] weight MatMulNBits computes with. */
export function dequantize4({ k, n, blockSize, packed, scales }: Quantized4): Float32Array {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let r = 0; r < k; r++) {
      const b = Math.floor(r / blockSize);
      const j = r - b * blockSize;
      const byte = packed[(col * blocks + b) * blob + (j >> 1)];
      const q = j & 1 ? byte >> 4 : byte & 0xf;
      out[r * n + col] = (q - 8) * scales[col * blocks + b];
    }
  }
  return out;
}

/** bitsandbytes' NF4 code book (quantiles of a unit normal, normalised to [-1, 1]); MatMulBnb4 quant_type 1. */
export const NF4_CODE = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495,
  0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);

/** A [K, N] weight in MatMulBnb4's layout: the transposed weight [N, K] flattened, blocks of `blockSize`. */
export interface QuantizedBnb4 {
  k: number;
  n: number;
  blockSize: number;
  packed: Uint8Array;
  absmax: Float32Array;
}

/**
 * NF4 quantization of Wᵀ flattened, per block of `blockSize` values: each value divided by its
 * block's absolute maximum is replaced by the nearest code. Two codes per byte, the earlier one in
 * the high nibble (bitsandbytes' order).
 */
export function quantizeBnb4(w: Float32Array, k: number, n: number, blockSize = 64): QuantizedBnb4 {
  if (w.length !== k * n) throw new Error(`quantizeBnb4: ${w.length} values for [${k}, ${n}]`);
  const total = k * n;
  const blocks = Math.ceil(total / blockSize);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(total / 2));
  const at = (i: number) => w[(i % k) * n + Math.floor(i / k)]; // element i of Wᵀ flattened
  for (let b = 0; b < blocks; b++) {
    const i0 = b * blockSize;
    const i1 = Math.min(total, i0 + blockSize);
    let m = 0;
    for (let i = i0; i < i1; i++) m = Math.max(m, Math.abs(at(i)));
    absmax[b] = Math.fround(m);
    for (let i = i0; i < i1; i++) {
      const v = m > 0 ? at(i) / m : 0;
      let best = 0;
      for (let c = 1; c < 16; c++) if (Math.abs(NF4_CODE[c] - v) < Math.abs(NF4_CODE[best] - v)) best = c;
      packed[i >> 1] |= i & 1 ? best : best << 4;
    }
  }
  return { k, n, blockSize, packed, absmax };
}

export function dequantizeBnb4({ k, n, blockSize, packed, absmax }: QuantizedBnb4): Float32Array {
  const out = new Float32Array(k * n);
  for (let i = 0; i < k * n; i++) {
    const byte = packed[i >> 1];
    const q = i & 1 ? byte & 0xf : byte >> 4;
    out[(i % k) * n + Math.floor(i / k)] = NF4_CODE[q] * absmax[Math.floor(i / blockSize)];
  }
  return out;
}

/**
 * Shares one quantization among the initializers made from it (a quantized weight, its scales, its
 * zero point), which the writer asks for one after another: computed on the first request, dropped
 * after the last, so memory stays near one tensor.
 */
export function shared<T>(compute: () => T, consumers: number): () => T {
  let value: T | undefined;
  let left = consumers;
  return () => {
    value ??= compute();
    const v = value;
    left -= 1;
    if (left === 0) {
      value = undefined;
      left = consumers;
    }
    return v;
  };
}
