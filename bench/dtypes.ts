/**
 * `npm run bench -- --dtypes [--variants fp32,q4,...] [--sizes base] [--runs N] [--max-new-tokens N]`
 *
 * Every ONNX variant on the same random synthetic folder, CPU: ours and transformers.js, each
 * variant in a process of its own (so resident memory is that of one worker holding one variant),
 * per-module times, greedy agreement with fp32, and the `auto` choice (src/hub/dtypes.ts) measured
 * as a row of its own.
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DTYPE_SUFFIX, MODULES, type Dtype, type DtypeByModule } from '../src/runtime/model-files';
import { dtypesFrom } from '../src/hub/dtypes';
import { benchModel } from './models';
import type { ProbeResult } from './dtype-probe';

const SEED = 1;
const THREADS = 2;

export interface DtypeBenchOptions {
  size: 'tiny' | 'base';
  variants: Dtype[];
  runs: number;
  maxNewTokens: number;
  /** The dtype table `--dtype auto` resolves to on CPU, measured as its own row. */
  auto: DtypeByModule;
  log: (line: string) => void;
}

function probe(
  dir: string,
  impl: 'ours' | 'tjs',
  dtype: DtypeByModule,
  runs: number,
  maxNewTokens: number,
  arena = true,
): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(__dirname, 'dtype-probe.ts'),
        dir,
        impl,
        JSON.stringify(dtype),
        String(runs),
        String(maxNewTokens),
        String(THREADS),
        arena ? '1' : '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as ProbeResult);
      else reject(new Error(`${impl} ${JSON.stringify(dtype)} exited ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

interface Summary {
  vision: number;
  encoder: number;
  decoderPerToken: number;
  total: number;
  rssAfterLoad: number;
  rssAfterRequest: number;
  peakRss: number;
}

function summarize(r: ProbeResult): Summary {
  return {
    vision: mean(r.images.map((i) => i.vision)),
    encoder: mean(r.images.map((i) => i.encoder)),
    decoderPerToken: mean(r.images.map((i) => i.decoder / Math.max(1, i.tokens))),
    total: mean(r.images.map((i) => i.total)),
    rssAfterLoad: r.rssAfterLoad,
    rssAfterRequest: r.rssAfterRequest,
    peakRss: r.peakRss,
  };
}

/** Share of positions where greedy ids equal fp32's (over fp32's generated tokens), and the first position that differs. */
export function agreement(ids: number[][], reference: number[][]): { share: number; firstDiff: (number | null)[] } {
  let equal = 0;
  let total = 0;
  const firstDiff = reference.map((ref, i) => {
    const row = ids[i];
    let first: number | null = null;
    for (let k = 1; k < ref.length; k++) {
      total += 1;
      if (row[k] === ref[k]) equal += 1;
      else first ??= k;
    }
    return first;
  });
  return { share: total === 0 ? 1 : equal / total, firstDiff };
}

const uniform = (d: Dtype): DtypeByModule => dtypesFrom(d);
const label = (t: DtypeByModule): string => {
  const ds = new Set(Object.values(t));
  return ds.size === 1 ? [...ds][0] : MODULES.map((m) => `${m.split('_')[0]}=${t[m]}`).join(',');
};

export async function dtypeBench(o: DtypeBenchOptions): Promise<string> {
  const started = performance.now();
  // fp32 first: it is the baseline every row is compared with
  const variants: Dtype[] = ['fp32', ...o.variants.filter((d) => d !== 'fp32')];
  const needed = [...new Set([...variants, ...Object.values(o.auto)])];
  const dir = await benchModel(o.size, SEED, o.log, null, needed);
  const fileMB = (t: DtypeByModule) =>
    MODULES.reduce((s, m) => s + statSync(join(dir, 'onnx', `${m}${DTYPE_SUFFIX[t[m]]}.onnx`)).size, 0) / 1e6;

  const rows: { name: string; table: DtypeByModule; ours: ProbeResult; tjs: ProbeResult | string | null }[] = [];
  // The last two rows show the memory/speed trade of --no-cpu-memory-arena (ours only).
  const tables: [string, DtypeByModule, boolean][] = [
    ...variants.map((d) => [d, uniform(d), true] as [string, DtypeByModule, boolean]),
    ['auto', o.auto, true],
    ['fp32, no CPU arena', uniform('fp32'), false],
    ['auto, no CPU arena', o.auto, false],
  ];
  for (const [name, table, arena] of tables) {
    o.log(`${name} (${label(table)}): ours`);
    const ours = await probe(dir, 'ours', table, o.runs, o.maxNewTokens, arena);
    o.log(`  ours: vision ${summarize(ours).vision.toFixed(0)} ms, decoder ${summarize(ours).decoderPerToken.toFixed(1)} ms/token`);
    let tjs: ProbeResult | string | null = null;
    if (arena) {
      try {
        o.log(`${name}: transformers.js`);
        tjs = await probe(dir, 'tjs', table, o.runs, o.maxNewTokens);
      } catch (err) {
        tjs = err instanceof Error ? err.message : String(err);
        o.log(`  transformers.js failed: ${tjs}`);
      }
    }
    rows.push({ name, table, ours, tjs });
  }

  const ref = rows[0].ours;
  const refIds = ref.images.map((i) => i.ids);
  const base = summarize(ref);
  const lines: string[] = [];
  lines.push(
    `### ${o.size} (random synthetic, seed ${SEED}), \`<OD>\`, greedy, max_new_tokens ${o.maxNewTokens}, median of ${o.runs} runs per image, mean of the two images; ${THREADS} threads`,
    '',
    '| variant | ONNX MB | vision ms | encoder ms | decoder ms/token | tokens/s (× fp32) | total ms | RSS after load MiB | RSS after a request MiB | peak RSS MiB | greedy tokens equal to fp32 | first difference (per image) | transformers.js vision ms | transformers.js decoder ms/token | transformers.js RSS after a request MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
  );
  for (const r of rows) {
    const s = summarize(r.ours);
    const a = agreement(
      r.ours.images.map((i) => i.ids),
      refIds,
    );
    const tjs = r.tjs;
    const tjsCells =
      tjs === null
        ? ['-', '-', '-']
        : typeof tjs === 'string'
          ? ['failed', 'failed', 'failed']
          : (() => {
              const t = summarize(tjs);
              return [t.vision.toFixed(0), t.decoderPerToken.toFixed(1), mib(t.rssAfterRequest)];
            })();
    const tokensPerSecond = 1000 / s.decoderPerToken;
    lines.push(
      `| ${r.name.startsWith('auto') ? r.name.replace('auto', `auto (${label(r.table)})`) : r.name} | ${fileMB(r.table).toFixed(0)} | ${s.vision.toFixed(0)} | ${s.encoder.toFixed(0)} | ${s.decoderPerToken.toFixed(1)} | ${tokensPerSecond.toFixed(1)} (${(base.decoderPerToken / s.decoderPerToken).toFixed(2)}×) | ${s.total.toFixed(0)} | ${mib(s.rssAfterLoad)} | ${mib(s.rssAfterRequest)} | ${mib(s.peakRss)} | ${(100 * a.share).toFixed(0)}% | ${a.firstDiff.map((f) => (f === null ? 'none' : `token ${f}`)).join(' / ')} | ${tjsCells.join(' | ')} |`,
    );
  }
  lines.push('');
  for (const r of rows) if (typeof r.tjs === 'string') lines.push(`- transformers.js could not run ${r.name}: ${r.tjs}`);
  lines.push(
    '- vision = the vision_encoder run; encoder = prompt embedding (embed_tokens) + merge + encoder_model run; decoder ms/token = the generation loop (embed_tokens of each new token + decoder_model_merged step + logits processing) per generated token; tokens/s = 1000 / decoder ms/token.',
    '- Each variant runs in a fresh process (ours, then transformers.js), so RSS is one worker holding that variant: after load, after the first request (a warm-up, excluded from the times), and the peak over the run. "no CPU arena" rows load with `cpuMemoryArena: false` (`--no-cpu-memory-arena`); transformers.js is not run for them.',
    '- greedy tokens equal to fp32: the share of generated positions where the variant emits the token fp32 emits on the same image (random weights: see the README on what this says about real weights).',
    `- Whole run ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    '',
  );
  return lines.join('\n');
}
