/**
 * One process, one implementation, one dtype table: loads the model folder, runs the benchmark
 * images, and prints one JSON line with stage times, ids and resident memory. A process of its own
 * per variant, so each RSS figure is that of one worker holding one variant and nothing else.
 *
 * `tsx bench/dtype-probe.ts DIR ours|tjs DTYPE_JSON RUNS MAX_NEW_TOKENS THREADS [ARENA 1|0]`
 */
import { performance } from 'node:perf_hooks';
import { Florence2 } from '../src/index';
import type { DtypeByModule } from '../src/runtime/model-files';
import { benchImages } from './images';
import { type Sample, median } from './stats';
import { loadTjs } from './tjs';

export interface ProbeImageResult {
  name: string;
  /** Medians over the timed runs. */
  vision: number;
  encoder: number;
  decoder: number;
  total: number;
  tokens: number;
  ids: number[];
}

export interface ProbeResult {
  loadMs: number;
  /** Resident set after load, after the first request, and the process's peak, in bytes. */
  rssAfterLoad: number;
  rssAfterRequest: number;
  peakRss: number;
  images: ProbeImageResult[];
}

async function main(): Promise<void> {
  const [dir, impl, dtypeJson, runsArg, maxArg, threadsArg, arenaArg] = process.argv.slice(2);
  const dtype = JSON.parse(dtypeJson) as DtypeByModule;
  const runs = Number(runsArg);
  const maxNewTokens = Number(maxArg);
  const threads = Number(threadsArg);
  const images = await benchImages();

  const t0 = performance.now();
  let runOne: (i: number) => Promise<Sample>;
  if (impl === 'ours') {
    const model = await Florence2.load(dir, { dtype, intraOpNumThreads: threads, cpuMemoryArena: arenaArg !== '0' });
    runOne = async (i) => {
      const r = await model.run({ image: images[i].png, task: '<OD>' }, { generation: { numBeams: 1, maxNewTokens } });
      return { ...r.timings, tokens: r.generatedTokens, ids: r.tokenIds, promptTokens: r.promptTokens };
    };
  } else {
    const tjs = await loadTjs(dir, threads, dtype);
    runOne = (i) => tjs.run(images[i].png, images[i].width, images[i].height, maxNewTokens);
  }
  const loadMs = performance.now() - t0;
  const rssAfterLoad = process.memoryUsage().rss;

  const samples: Sample[][] = images.map(() => []);
  await runOne(0); // warm-up, excluded
  const rssAfterRequest = process.memoryUsage().rss;
  for (let i = 1; i < images.length; i++) await runOne(i);
  for (let r = 0; r < runs; r++) for (let i = 0; i < images.length; i++) samples[i].push(await runOne(i));

  const result: ProbeResult = {
    loadMs,
    rssAfterLoad,
    rssAfterRequest,
    peakRss: process.resourceUsage().maxRSS * 1024,
    images: images.map((im, i) => {
      const s = samples[i];
      const m = (f: (x: Sample) => number) => median(s.map(f));
      return {
        name: im.name,
        vision: m((x) => x.vision),
        encoder: m((x) => x.encoder),
        decoder: m((x) => x.decoder),
        total: m((x) => x.total),
        tokens: s[0].tokens,
        ids: s[0].ids,
      };
    }),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`probe failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
