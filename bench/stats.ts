/** Samples, medians and the markdown table of the benchmark. */
import type { StageTimings } from '../src/florence/pipeline';

/** One image through one implementation: stage times in milliseconds, as the pipeline reports them. */
export interface Sample extends StageTimings {
  /** Generated tokens, decoder start token excluded. */
  tokens: number;
  /** Output ids, decoder start token first. */
  ids: number[];
  promptTokens: number;
}

export interface Row {
  label: string;
  preprocess: number;
  vision: number;
  encoder: number;
  decoder: number;
  decoderPerToken: number;
  total: number;
  imagesPerSecond: number;
  /** Generated tokens per image (in image order). */
  tokens: number[];
  /** Output ids per image (from the first timed run). */
  ids: number[][];
  promptTokens: number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * `samples[image][run]` → one row: for each column, the median over runs per image, then the mean over
 * images (so "per image" weighs every test image equally).
 */
export function summarize(label: string, samples: Sample[][]): Row {
  const col = (f: (s: Sample) => number) => mean(samples.map((runs) => median(runs.map(f))));
  const total = col((s) => s.total);
  return {
    label,
    preprocess: col((s) => s.preprocess),
    vision: col((s) => s.vision),
    encoder: col((s) => s.encoder),
    decoder: col((s) => s.decoder),
    decoderPerToken: col((s) => s.decoder / Math.max(1, s.tokens)),
    total,
    imagesPerSecond: 1000 / total,
    tokens: samples.map((runs) => runs[0].tokens),
    ids: samples.map((runs) => runs[0].ids),
    promptTokens: samples.map((runs) => runs[0].promptTokens),
  };
}

/** Tokens of one implementation that changed between runs of the same image (should never happen). */
export function unstableTokens(samples: Sample[][]): boolean {
  return samples.some((runs) => runs.some((s) => s.ids.join(',') !== runs[0].ids.join(',')));
}

function fmt(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  return ms.toFixed(2);
}

export function markdownTable(rows: readonly Row[]): string {
  const head = [
    '',
    'preprocess ms',
    'vision ms',
    'encoder ms',
    'decoder ms',
    'decoder ms/token',
    'total ms per image',
    'images/s',
    'generated tokens',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) {
    const tokens = r.tokens.every((t) => t === r.tokens[0]) ? String(r.tokens[0]) : r.tokens.join(' / ');
    const ips = r.imagesPerSecond >= 10 ? r.imagesPerSecond.toFixed(1) : r.imagesPerSecond.toFixed(2);
    lines.push(
      `| ${[r.label, fmt(r.preprocess), fmt(r.vision), fmt(r.encoder), fmt(r.decoder), fmt(r.decoderPerToken), fmt(r.total), ips, tokens].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}
