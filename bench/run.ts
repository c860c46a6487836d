/**
 * `npm run bench [-- --sizes tiny,base] [--runs N] [--max-new-tokens N] [--transfers]`
 *
 * Ours (Florence2.load/run) against transformers.js on random synthetic models, CPU, same folder,
 * same two images, same task (<OD>), same generated length; what tracing costs a server request
 * (bench/tracing.ts); then the host↔device bytes per decoder step of each decoder-state path and the
 * cost of host row gathers (bench/transfers.ts; alone with `--transfers`). Progress goes to stderr,
 * the report (machine, one markdown table per model, ratios, how each column was measured) to stdout.
 */
import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Florence2 } from '../src/index';
import type { ResampleMode } from '../src/florence/preprocess';
import type { SizeName } from '../tools/synth/sizes';
import { benchModel } from './models';
import { type BenchImage, benchImages } from './images';
import { type Row, type Sample, markdownTable, median, summarize, unstableTokens } from './stats';
import { loadTjs } from './tjs';
import { dtypeBench } from './dtypes';
import { DTYPE_SUFFIX, isDtype, type Dtype } from '../src/runtime/model-files';
import { dtypesFrom } from '../src/hub/dtypes';
import { readModelConfig } from '../src/florence/model-config';
import { rowOpsReport, transferReport } from './transfers';
import { tracingCost, tracingReport } from './tracing';

const THREADS = 2;
const SEED = 1;
const DEFAULTS: Record<'tiny' | 'base', { runs: number; maxNewTokens: number }> = {
  tiny: { runs: 5, maxNewTokens: 64 },
  base: { runs: 3, maxNewTokens: 20 },
};

const log = (line: string) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
const started = performance.now();

/** A dependency's version, from the package.json above its resolved entry point (some packages do not export it). */
function packageVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    for (;;) {
      const file = join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name && pkg.version) return pkg.version;
      }
      const up = dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
  } catch {
    return 'unknown';
  }
}

class UsageError extends Error {}

const USAGE =
  'npm run bench -- [--sizes tiny,base] [--runs N] [--max-new-tokens N] [--transfers]\n' +
  '       npm run bench -- --dtypes [--variants fp32,fp16,q8,int8,uint8,q4,q4f16,bnb4] [--sizes base] [--runs N] [--max-new-tokens N]';

function parseOptions() {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string' },
      runs: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      dtypes: { type: 'boolean', default: false },
      transfers: { type: 'boolean', default: false },
      variants: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const sizes = (values.sizes ?? 'tiny,base')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of sizes) if (s !== 'tiny' && s !== 'base') throw new UsageError(`--sizes: unknown size "${s}" (tiny, base)`);
  const int = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, got "${v}"`);
    return n;
  };
  const variants = (values.variants ?? Object.keys(DTYPE_SUFFIX).join(','))
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  for (const v of variants)
    if (!isDtype(v)) throw new UsageError(`--variants: unknown variant "${v}" (${Object.keys(DTYPE_SUFFIX).join(', ')})`);
  if (values.variants !== undefined && !values.dtypes) throw new UsageError('--variants goes with --dtypes');
  return {
    dtypes: values.dtypes,
    transfersOnly: values.transfers,
    variants: variants as Dtype[],
    sizesGiven: values.sizes !== undefined,
    sizes: sizes as ('tiny' | 'base')[],
    runs: int('runs', values.runs),
    maxNewTokens: int('max-new-tokens', values['max-new-tokens']),
  };
}

type RunOne = (image: BenchImage) => Promise<Sample>;

interface Config {
  label: string;
  runOne: RunOne;
}

/**
 * One warm-up call per image and configuration (excluded), then `runs` rounds; within a round every
 * image goes through every configuration in turn, so a change in background load hits all rows
 * alike. Returns samples[config][image][run].
 */
async function measure(configs: Config[], images: BenchImage[], runs: number): Promise<Sample[][][]> {
  const samples: Sample[][][] = configs.map(() => images.map(() => []));
  for (const c of configs) {
    const w0 = performance.now();
    for (const image of images) await c.runOne(image);
    log(`  warm-up ${c.label}: ${(performance.now() - w0).toFixed(0)} ms`);
  }
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < images.length; i++) {
      const parts: string[] = [];
      for (let k = 0; k < configs.length; k++) {
        const s = await configs[k].runOne(images[i]);
        samples[k][i].push(s);
        parts.push(`${configs[k].label} ${s.total.toFixed(0)} ms/${s.tokens} tok`);
      }
      log(`  run ${r + 1}/${runs} ${images[i].name}: ${parts.join(', ')}`);
    }
  }
  return samples;
}

async function oursRunner(dir: string, resample: ResampleMode) {
  const t0 = performance.now();
  const model = await Florence2.load(dir, { resample, intraOpNumThreads: THREADS });
  log(`  ours (${resample} resize) loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  const runWith =
    (numBeams: number, maxNewTokens: number): RunOne =>
    async (image) => {
      const r = await model.run({ image: image.png, task: '<OD>' }, { generation: { numBeams, maxNewTokens } });
      return { ...r.timings, tokens: r.generatedTokens, ids: r.tokenIds, promptTokens: r.promptTokens };
    };
  return { runWith, release: () => model.release() };
}

/** CPU time of the whole machine and of this process, to tell how busy other processes kept the cores. */
interface CpuMark {
  wall: number;
  machineBusy: number | null;
  self: number;
}

function cpuMark(): CpuMark {
  let machineBusy: number | null;
  try {
    // /proc/stat "cpu" line: user nice system idle iowait irq softirq steal ... in USER_HZ (100/s).
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    machineBusy = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
  } catch {
    machineBusy = null;
  }
  const u = process.cpuUsage();
  return { wall: performance.now() / 1000, machineBusy, self: (u.user + u.system) / 1e6 };
}

/** Average cores other processes used between two marks (null where /proc/stat is unavailable). */
function backgroundCores(a: CpuMark, b: CpuMark): number | null {
  if (a.machineBusy === null || b.machineBusy === null) return null;
  return Math.max(0, (b.machineBusy - a.machineBusy - (b.self - a.self)) / (b.wall - a.wall));
}

interface ModelReport {
  size: SizeName;
  runs: number;
  maxNewTokens: number;
  rows: Row[];
  notes: string[];
  seconds: number;
  /** Run-to-run spread of "ours greedy" total: per image the median absolute deviation over the median, then the median over images, in %. */
  greedySpreadPct: number;
}

/** The spread of one configuration's totals, as {@link ModelReport.greedySpreadPct} describes it. */
function spreadPct(samples: Sample[][]): number {
  return median(
    samples.map((runs) => {
      const totals = runs.map((s) => s.total);
      const m = median(totals);
      return (median(totals.map((t) => Math.abs(t - m))) / m) * 100;
    }),
  );
}

async function benchSize(
  size: 'tiny' | 'base',
  images: BenchImage[],
  opts: { runs?: number; maxNewTokens?: number },
): Promise<ModelReport> {
  const s0 = performance.now();
  const runs = opts.runs ?? DEFAULTS[size].runs;
  const maxNewTokens = opts.maxNewTokens ?? DEFAULTS[size].maxNewTokens;
  log(`== ${size}: ${runs} runs, max_new_tokens ${maxNewTokens}`);
  const dir = await benchModel(size, SEED, log);
  const notes: string[] = [];

  const pil = await oursRunner(dir, 'pil');
  const sharpOurs = await oursRunner(dir, 'sharp');
  const t0 = performance.now();
  const tjs = await loadTjs(dir, THREADS);
  log(`  transformers.js loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  const configs: Config[] = [
    { label: 'ours greedy', runOne: pil.runWith(1, maxNewTokens) },
    { label: 'ours beams=3', runOne: pil.runWith(3, maxNewTokens) },
    { label: 'ours greedy (sharp resize)', runOne: sharpOurs.runWith(1, maxNewTokens) },
    { label: 'transformers.js greedy¹', runOne: (image) => tjs.run(image.png, image.width, image.height, maxNewTokens) },
  ];
  const m0 = cpuMark();
  const samples = await measure(configs, images, runs);
  const bg = backgroundCores(m0, cpuMark());
  await Promise.all([pil.release(), sharpOurs.release(), tjs.release()]);

  configs.forEach((c, k) => {
    if (unstableTokens(samples[k])) notes.push(`⚠ ${c.label}: output ids changed between runs of the same image.`);
  });
  const rows = configs.map((c, k) => summarize(c.label, samples[k]));

  // Fairness checks: same prompt length and same generated length, image by image.
  const [ours, , , theirs] = rows;
  images.forEach((image, i) => {
    if (ours.promptTokens[i] !== theirs.promptTokens[i]) {
      notes.push(
        `⚠ ${image.name}: prompt lengths differ (ours ${ours.promptTokens[i]}, transformers.js ${theirs.promptTokens[i]} tokens).`,
      );
    }
    if (ours.tokens[i] !== theirs.tokens[i]) {
      notes.push(
        `⚠ ${image.name}: generated lengths differ (ours greedy ${ours.tokens[i]}, transformers.js ${theirs.tokens[i]} tokens); per-token columns stay comparable, totals less so.`,
      );
    }
  });
  const sameLength = images.every((_, i) => ours.tokens[i] === theirs.tokens[i]);
  if (sameLength)
    notes.push(
      `Generated length check: ours greedy and transformers.js both generated ${ours.tokens.join(' / ')} tokens (${images.map((im) => im.name).join(' / ')}), prompt ${ours.promptTokens[0]} tokens.`,
    );
  const same = (a: Row, b: Row) =>
    images.map((im, i) => `${im.name} ${a.ids[i].join(',') === b.ids[i].join(',') ? 'identical' : 'differ'}`).join(', ');
  const allSame = images.every((_, i) => ours.ids[i].join(',') === theirs.ids[i].join(','));
  notes.push(
    `Greedy ids, ours (PIL resize) vs transformers.js: ${same(ours, theirs)}` +
      (allSame
        ? '.'
        : ' (the two resize differently, and a random model is sensitive to small pixel differences; equal lengths are what keeps the timing fair).'),
  );
  notes.push(`Greedy ids, ours sharp resize vs ours PIL resize: ${same(rows[2], ours)}.`);
  if (bg !== null) {
    notes.push(
      `Other processes kept ${bg.toFixed(2)} of ${cpus().length} cores busy on average during the timed runs` +
        (bg > 0.2
          ? ' ⚠ (the numbers are slowed by contention; rows were interleaved per image so it hits them alike, but expect noise)'
          : '') +
        '.',
    );
  }

  const seconds = (performance.now() - s0) / 1000;
  log(`== ${size}: done in ${seconds.toFixed(1)} s`);
  return { size, runs, maxNewTokens, rows, notes, seconds, greedySpreadPct: spreadPct(samples[0]) };
}

function ratio(a: number, b: number): string {
  const r = a / b;
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function report(r: ModelReport, images: BenchImage[]): string {
  const [ours, , , tjs] = r.rows;
  const totalRatio = tjs.total / ours.total;
  const tokenRatio = tjs.decoderPerToken / ours.decoderPerToken;
  const lines = [
    `### ${r.size} (random synthetic, seed ${SEED}), \`<OD>\`, max_new_tokens ${r.maxNewTokens}, median of ${r.runs} runs, images ${images.map((i) => i.name).join(' + ')}`,
    '',
    markdownTable(r.rows),
    '',
    `ours greedy vs transformers.js: ${ratio(tjs.total, ours.total)} faster (total), ${ratio(tjs.decoderPerToken, ours.decoderPerToken)} (decoder ms/token)` +
      (totalRatio < 1 || tokenRatio < 1 ? ' (a ratio below 1× means ours is slower)' : ''),
    '',
    '¹ transformers.js has no beam search: asked for `num_beams` > 1 it still decodes greedily, so it has no beams=3 row and is compared greedy to greedy.',
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
  ];
  return lines.join('\n');
}

const HOW_MEASURED = `How each column was measured (all wall-clock \`performance.now()\`, one image per call, batch size 1, both on onnxruntime-node CPU with intraOpNumThreads ${THREADS}, interOpNumThreads 1, graph optimization "all", fp32, all four ONNX files from the same folder):
- Every value is the median over the timed runs for each image, then the mean over the two images; one warm-up call per image and configuration is excluded; all four rows' models stay loaded and the rows take turns image by image. images/s = 1000 / total ms per image.
- ours: the \`timings\` that \`model.run()\` returns. preprocess = PNG decode + resize (PIL-exact bicubic by default, or sharp) + normalize + prompt tokenization; vision = the vision_encoder run; encoder = prompt embedding + [image ; prompt] merge + encoder run; decoder = the whole generation loop (embedding of each new token, decoder steps, logits processing, beam bookkeeping); total = preprocess..postprocess (decode + <OD> parsing with scores).
- transformers.js: preprocess = \`RawImage.fromBlob\` (sharp decode of the same PNG bytes) + \`Florence2Processor(image, '<OD>')\`; generate() is timed as a whole and split by timers wrapped around its ONNX sessions' \`run\`: vision = the vision_encoder run, encoder = generate() start to the end of the encoder run minus vision (prompt embedding, merge, encoder), decoder = the rest of generate(); total = preprocess + generate() + \`batch_decode\` + \`post_process_generation\`.
- decoder ms/token = decoder ms / generated tokens of that call (for beams=3: tokens of the returned best sequence; each step runs 3 rows). generated tokens excludes the decoder start token; with a random model every call runs to max_new_tokens (the last one forced to </s>).`;

async function main() {
  const opts = parseOptions();
  const cpu = cpus();
  const machine = `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform}/${process.arch}; Node ${process.version}; onnxruntime-node ${packageVersion('onnxruntime-node')}; @huggingface/transformers ${packageVersion('@huggingface/transformers')}`;
  log(machine);
  const images = await benchImages();
  log(`images: ${images.map((i) => `${i.name} (${(i.png.length / 1024).toFixed(0)} KiB PNG)`).join(', ')}`);

  if (opts.dtypes) {
    const out = ['## florence2-server benchmark: ONNX variants, ours vs transformers.js (CPU)', '', machine, ''];
    for (const size of opts.sizesGiven ? opts.sizes : (['base'] as const)) {
      out.push(
        await dtypeBench({
          size,
          variants: opts.variants,
          runs: opts.runs ?? DEFAULTS[size].runs,
          maxNewTokens: opts.maxNewTokens ?? DEFAULTS[size].maxNewTokens,
          auto: dtypesFrom(undefined, 'cpu'),
          log,
        }),
      );
    }
    process.stdout.write(out.join('\n'));
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return;
  }

  const transfers: string[] = ['## Decoder state: host↔device bytes per step, and host row gathers', ''];
  for (const size of opts.sizes) {
    const dir = await benchModel(size, SEED, log);
    transfers.push(await transferReport(dir, size, log));
    transfers.push(await rowOpsReport(readModelConfig(dir).dims, size, log));
  }
  if (opts.transfersOnly) {
    process.stdout.write([machine, '', ...transfers].join('\n'));
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return;
  }

  const reports: ModelReport[] = [];
  for (const size of opts.sizes) reports.push(await benchSize(size, images, opts));
  log('== tracing: its calls per request, no-op / off / on');
  const tracing = tracingReport(
    await tracingCost(log),
    reports.map((r) => ({ size: r.size, ms: r.rows[0].total, spreadPct: r.greedySpreadPct })),
  );

  const elapsed = (performance.now() - started) / 1000;
  const out = [
    '## florence2-server benchmark: ours vs transformers.js (CPU)',
    '',
    machine,
    '',
    ...reports.map((r) => report(r, images)),
    HOW_MEASURED,
    '',
    tracing,
    ...transfers,
    `Whole run: ${elapsed.toFixed(0)} s (${reports.map((r) => `${r.size} ${r.seconds.toFixed(0)} s`).join(', ')}, model builds and loads included).`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  log(`done in ${elapsed.toFixed(1)} s`);
}

main().catch((err) => {
  process.stderr.write(
    err instanceof UsageError
      ? `bench: ${err.message}\nusage: ${USAGE}\n`
      : `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
