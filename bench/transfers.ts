/**
 * Host↔device bytes per decoder step for each decoder-state path, and the CPU cost of the two ways
 * to gather host rows. Part of `npm run bench` (and `--transfers` alone).
 *
 * Bytes are counted by the backend from the tensors that cross `session.run` with their locations
 * (src/runtime/transfers.ts); beside each measured figure stands the analytic count, and the report
 * says whether they agree. Paths:
 * - CPU: host state on the CPU provider (nothing crosses a bus, but these are the bytes a device
 *   would be sent and would return);
 * - CUDA: host state too, since onnxruntime-node returns CUDA outputs to the host; the same tensors
 *   as CPU, so its figures are the analytic count (no CUDA provider here to run it);
 * - WebGPU-resident: device state, measured where onnxruntime finds a WebGPU adapter.
 */
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { ModelDims } from '../src/florence/generation/backend';
import { OrtBackend, type OrtBackendOptions } from '../src/runtime/ort-backend';
import { copyRows, RowGatherer, webgpuUnavailable } from '../src/runtime/row-gather';
import type { StepTransfer } from '../src/runtime/transfers';
import { decodeSteps } from '../test/helpers/decode-steps';
import { readModelConfig } from '../src/florence/model-config';
import { median } from './stats';

/** Encoder length of a base/large request: 577 image tokens and a 13-token prompt (`<OD>`). */
export const ENCODER_LENGTH = 590;

export type StatePath = 'host' | 'device';

/** The bytes a decoder step moves, from the tensors it feeds and fetches (src/runtime/ort-backend.ts `decode`). */
export function analyticStep(
  dims: ModelDims,
  path: StatePath,
  step: { rows: number; encoderLength: number; past: number; reorder: boolean },
): { hostToDevice: number; deviceToHost: number } {
  const { dModel: D, decoderLayers: L, decoderHeads: H, headDim: Dh, vocabSize: V } = dims;
  const { rows: R, encoderLength: S, past: T } = step;
  const first = T === 0;
  if (path === 'device') {
    // input_ids and use_cache_branch in, logits out; row indices in for a reorder; the first step also
    // uploads the encoder batch once.
    const upload = first ? R * S * D * 4 + R * S * 8 + R * 8 : 0;
    return { hostToDevice: R * 8 + 1 + (step.reorder && !first ? R * 8 : 0) + upload, deviceToHost: R * V * 4 };
  }
  const kv = (len: number) => 2 * L * R * H * len * Dh * 4;
  const cross = kv(S);
  return {
    hostToDevice: R * 8 + R * D * 4 + R * S * D * 4 + R * S * 8 + 1 + kv(T) + (first ? 0 : cross),
    deviceToHost: R * D * 4 + R * V * 4 + kv(T + 1) + (first ? cross : 0),
  };
}

const mb = (bytes: number) =>
  bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : bytes >= 1e3 ? `${(bytes / 1e3).toFixed(1)} kB` : `${bytes} B`;

interface PathRun {
  label: string;
  path: StatePath;
  options: OrtBackendOptions | null;
}

/**
 * The bytes table for one model folder: per path and row count (1 row greedy, 3 rows with a beam
 * reorder before every step), steps 1, 2 and `steps`, measured where the path can run here.
 */
export async function transferReport(dir: string, name: string, log: (line: string) => void, steps = 8): Promise<string> {
  const dims = readModelConfig(dir).dims;
  const noWebgpu = await webgpuUnavailable();
  const paths: PathRun[] = [
    { label: 'CPU (host state)', path: 'host', options: { intraOpNumThreads: 2 } },
    { label: 'CUDA (host state; outputs return to the host)', path: 'host', options: null },
    { label: 'WebGPU-resident (device state)', path: 'device', options: noWebgpu === null ? { executionProviders: ['webgpu'] } : null },
  ];
  const lines = [
    `#### Host↔device bytes per decoder step, ${name} (L ${dims.decoderLayers}, H ${dims.decoderHeads}, Dh ${dims.headDim}, vocab ${dims.vocabSize}), encoder length ${ENCODER_LENGTH}`,
    '',
    '| path | rows | step 1 (in / out) | step 2 | step ' + steps + ' | bound rows × (vocab × 4 + 64) | source |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  const notes: string[] = [];
  for (const p of paths) {
    for (const rows of [1, 3]) {
      const reorder = rows > 1;
      const analytic = Array.from({ length: steps }, (_, t) =>
        analyticStep(dims, p.path, { rows, encoderLength: ENCODER_LENGTH, past: t, reorder }),
      );
      let measured: StepTransfer[] | null = null;
      if (p.options) {
        log(`  transfers: ${p.label}, ${rows} row(s), ${steps} steps`);
        const backend = await OrtBackend.open(dir, dims, { ...p.options, recordTransfers: true });
        try {
          measured = await decodeSteps(backend, ENCODER_LENGTH, rows, steps, reorder);
        } finally {
          await backend.release();
        }
        const agree = measured.every((m, t) => m.hostToDevice === analytic[t].hostToDevice && m.deviceToHost === analytic[t].deviceToHost);
        if (!agree) notes.push(`⚠ ${p.label}, ${rows} row(s): measured bytes differ from the analytic count.`);
      }
      const figures = measured ?? analytic;
      const cell = (t: number) => `${mb(figures[t].hostToDevice)} / ${mb(figures[t].deviceToHost)}`;
      const bound = rows * (dims.vocabSize * 4 + 64);
      lines.push(
        `| ${p.label} | ${rows} | ${cell(0)} | ${cell(1)} | ${cell(steps - 1)} | ${mb(bound)} | ${measured ? 'measured = analytic' : 'analytic'} |`,
      );
      if (p.path === 'device') {
        const later = figures.slice(1).map((f) => f.hostToDevice + f.deviceToHost);
        if (later.some((b) => b > bound)) notes.push(`⚠ ${p.label}, ${rows} row(s): a step after the first is over the bound.`);
      }
    }
  }
  lines.push('');
  lines.push(
    'Step 1 has an empty cache (and, for device state, uploads the encoder batch once); from step 2 on, host state sends the whole cache and the encoder states again every step, device state only token ids, the cache-branch flag and (3 rows) the reorder indices, and fetches only the logits.',
  );
  if (noWebgpu !== null) lines.push(`WebGPU: not measured here (${noWebgpu}); its figures are the analytic count.`);
  lines.push('CUDA: not run here (no CUDA provider in this install); host state moves the same tensors as on CPU.');
  lines.push(...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

/**
 * Host row gathers, JavaScript copies vs the Gather graph on the CPU provider, at `dims` with 3 rows
 * (a beam reorder): the self-attention cache at a few lengths, and self + cross K/V (a row leaving).
 */
export async function rowOpsReport(dims: ModelDims, name: string, log: (line: string) => void, runs = 15): Promise<string> {
  const { decoderLayers: L, decoderHeads: H, headDim: Dh } = dims;
  const R = 3;
  const rows = [2, 0, 1];
  const gatherer = new RowGatherer({ executionProviders: ['cpu'], intraOpNumThreads: 2, interOpNumThreads: 1 }, 'cpu');
  const tensors = (length: number) =>
    Array.from({ length: 2 * L }, () => new ort.Tensor('float32', new Float32Array(R * H * length * Dh).fill(0.5), [R, H, length, Dh]));
  const lines = [
    `#### Host row gathers (beam reorder, 3 rows), ${name}: median of ${runs} calls, ms`,
    '',
    '| what | MB moved | JS copies | Gather graph (CPU provider) |',
    '|---|---:|---:|---:|',
  ];
  const cases: [string, ort.Tensor[]][] = [
    ['self K/V, 16 tokens', tensors(16)],
    ['self K/V, 128 tokens', tensors(128)],
    [`self + cross K/V, 128 tokens + encoder ${ENCODER_LENGTH}`, [...tensors(128), ...tensors(ENCODER_LENGTH)]],
  ];
  let copyWins = 0;
  for (const [what, ts] of cases) {
    const time = async (f: () => unknown) => {
      await f();
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await f();
        ms.push(performance.now() - t0);
      }
      return median(ms);
    };
    const copy = await time(() => ts.map((t) => copyRows(t, rows)));
    const graph = await time(() => gatherer.gather(ts, rows));
    if (copy <= graph) copyWins += 1;
    const bytes = ts.reduce((a, t) => a + t.size * 4, 0);
    log(`  row gathers, ${what}: copy ${copy.toFixed(2)} ms, graph ${graph.toFixed(2)} ms`);
    lines.push(`| ${what} | ${(bytes / 1e6).toFixed(1)} | ${copy.toFixed(2)} | ${graph.toFixed(2)} |`);
  }
  await gatherer.release();
  lines.push(
    '',
    `JS copies were faster in ${copyWins} of ${cases.length} cases (the graph copies its inputs in and its outputs back out of onnxruntime). Host state uses \`rowOps\` = \`copy\` by default; the outputs are the same either way (test/core/decoder-state.test.ts).`,
    '',
  );
  return lines.join('\n');
}
