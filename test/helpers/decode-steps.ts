/**
 * Decoder steps driven by hand on an onnxruntime backend, for counting what each step moves
 * (test/core/decoder-state.test.ts, and the bytes table of `npm run bench`).
 */
import type { DecoderStepOutput, KvCache } from '../../src/florence/generation/backend';
import type { OrtBackend } from '../../src/runtime/ort-backend';
import type { StepTransfer } from '../../src/runtime/transfers';

/** `n` steps over random encoder states of length `S` for `rows` rows, reversed between steps when `reorder`. */
export async function decodeSteps(backend: OrtBackend, S: number, rows: number, n: number, reorder: boolean): Promise<StepTransfer[]> {
  const D = backend.dims.dModel;
  const states = Float32Array.from({ length: rows * S * D }, (_, i) => Math.sin(i) * 0.5);
  const encoder = { states, mask: new BigInt64Array(rows * S).fill(1n), batch: rows, length: S };
  const items = [...Array(rows).keys()];
  const before = backend.transfers.steps.length;
  let cache: KvCache | null = null;
  try {
    for (let t = 0; t < n; t++) {
      if (cache && reorder) cache = await backend.selectRows(cache, [...items].reverse(), items);
      const out: DecoderStepOutput = await backend.decode({
        tokens: new BigInt64Array(rows).fill(BigInt(2 + t)),
        rowItems: items,
        encoder,
        cache,
      });
      cache = out.cache;
    }
  } finally {
    if (cache) backend.releaseCache(cache);
  }
  return backend.transfers.steps.slice(before);
}
