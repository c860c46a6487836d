/**
 * `npm run bench:gpu [-- --size base|tiny] [--providers webgpu,cuda] [--max-new-tokens N] [--allow-software]`
 *
 * The GPU figures on every GPU execution provider this machine has (webgpu; cuda where installed),
 * on a synthetic model of the real size: tokens/s at batch 1 (greedy and 3 beams, a random model
 * that runs to max_new_tokens), vision ms per image, images/s through the server's batching at 1, 8
 * and 32 concurrent requests (a scripted model, `florence2 serve --devices ...` on 127.0.0.1), and
 * the host↔device bytes per decoder step. Exits 0 saying so when there is no GPU.
 *
 * A WebGPU adapter without a GPU device node is a software rasterizer (Mesa's lavapipe, as the
 * tests use): it is not a GPU, and is skipped unless `--allow-software` (to check this command).
 */
import { existsSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { Florence2 } from '../src/index';
import { executionProvidersFor } from '../src/runtime/ort-backend';
import { rowGatherModel, webgpuUnavailable } from '../src/runtime/row-gather';
import { startServerProcess } from '../test/helpers/server-process';
import type { SizeName } from '../tools/synth/sizes';
import { benchModel } from './models';
import { runLevel, SCRIPT, SCRIPTED_BOXES } from './levels';
import { median } from './stats';
import { transferReport } from './transfers';

const started = performance.now();
const log = (line: string) => process.stderr.write(`[gpu ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

type GpuProvider = 'webgpu' | 'cuda';
const GPU_PROVIDERS: GpuProvider[] = ['webgpu', 'cuda'];

interface Options {
  size: SizeName;
  providers: GpuProvider[];
  maxNewTokens: number;
  allowSoftware: boolean;
  runs: number;
}

const USAGE =
  'npm run bench:gpu -- [--size base|tiny (base)] [--providers webgpu,cuda (all)] [--max-new-tokens N (128)] [--runs N (3)] [--allow-software]\n';

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: 'base' },
      providers: { type: 'string', default: GPU_PROVIDERS.join(',') },
      'max-new-tokens': { type: 'string', default: '128' },
      runs: { type: 'string', default: '3' },
      'allow-software': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (values.size !== 'base' && values.size !== 'tiny') throw new Error(`--size must be base or tiny, got ${values.size}`);
  const providers = values.providers.split(',').map((p) => p.trim());
  for (const p of providers) if (!GPU_PROVIDERS.includes(p as GpuProvider)) throw new Error(`--providers: unknown "${p}" (webgpu, cuda)`);
  const positive = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got "${v}"`);
    return n;
  };
  return {
    size: values.size,
    providers: providers as GpuProvider[],
    maxNewTokens: positive('max-new-tokens', values['max-new-tokens']),
    runs: positive('runs', values.runs),
    allowSoftware: values['allow-software'],
  };
}

/** GPU device nodes of the kernel drivers a WebGPU adapter could sit on (NVIDIA, DRM render nodes). */
function gpuDeviceNodes(): string[] {
  const nodes: string[] = [];
  try {
    nodes.push(
      ...readdirSync('/dev')
        .filter((n) => /^nvidia\d+$/.test(n))
        .map((n) => `/dev/${n}`),
    );
  } catch {
    // no /dev: not Linux
  }
  if (existsSync('/dev/dri'))
    nodes.push(
      ...readdirSync('/dev/dri')
        .filter((n) => n.startsWith('renderD'))
        .map((n) => `/dev/dri/${n}`),
    );
  return nodes;
}

/** Why `provider` cannot be benchmarked here, or null. */
async function unavailable(provider: GpuProvider, allowSoftware: boolean): Promise<string | null> {
  if (provider === 'webgpu') {
    const why = await webgpuUnavailable();
    if (why !== null) return why;
    if (gpuDeviceNodes().length === 0 && !allowSoftware)
      return 'onnxruntime found a WebGPU adapter but the machine has no GPU device node (/dev/nvidia*, /dev/dri/renderD*): a software rasterizer such as lavapipe, not a GPU (--allow-software runs on it anyway)';
    return null;
  }
  try {
    const s = await ort.InferenceSession.create(rowGatherModel(['float32']), { executionProviders: executionProvidersFor('cuda', 0) });
    await s.release();
    return null;
  } catch (err) {
    return (err instanceof Error ? err.message : String(err)).split('\n')[0];
  }
}

interface BatchOne {
  greedyTokensPerS: number;
  beamTokensPerS: number;
  greedyEndToEnd: number;
  visionMs: number;
  tokens: number;
}

/** Batch 1 through the library: decoder tokens/s (generated tokens / decode time) and vision ms, median of `runs`. */
async function batchOne(dir: string, provider: GpuProvider, image: Buffer, o: Options): Promise<BatchOne> {
  const model = await Florence2.load(dir, { executionProviders: executionProvidersFor(provider, 0) });
  try {
    const measure = async (numBeams: number) => {
      await model.run({ image, task: '<OD>' }, { generation: { numBeams, maxNewTokens: o.maxNewTokens } });
      const rates: number[] = [];
      const endToEnd: number[] = [];
      const vision: number[] = [];
      let tokens = 0;
      for (let i = 0; i < o.runs; i++) {
        const r = await model.run({ image, task: '<OD>' }, { generation: { numBeams, maxNewTokens: o.maxNewTokens } });
        tokens = r.generatedTokens;
        rates.push(r.generatedTokens / (r.timings.decoder / 1000));
        endToEnd.push(r.generatedTokens / (r.timings.total / 1000));
        vision.push(r.timings.vision);
        log(
          `  ${provider} batch 1, ${numBeams} beam(s): ${r.generatedTokens} tokens, decode ${r.timings.decoder.toFixed(0)} ms, vision ${r.timings.vision.toFixed(1)} ms`,
        );
      }
      return { rate: median(rates), endToEnd: median(endToEnd), vision: median(vision), tokens };
    };
    const greedy = await measure(1);
    const beams = await measure(3);
    return {
      greedyTokensPerS: greedy.rate,
      beamTokensPerS: beams.rate,
      greedyEndToEnd: greedy.endToEnd,
      visionMs: greedy.vision,
      tokens: greedy.tokens,
    };
  } finally {
    await model.release();
  }
}

/** images/s through `florence2 serve` on the device at each concurrency (closed-loop clients). */
async function served(dir: string, provider: GpuProvider, images: Buffer[], levels: number[]): Promise<Map<number, number>> {
  const device = provider === 'webgpu' ? 'webgpu:0' : 'cuda:0';
  const s = await startServerProcess([
    '--model',
    dir,
    '--devices',
    provider === 'webgpu' ? 'webgpu' : device,
    '--max-queue-per-device',
    String(4 * Math.max(...levels)),
  ]);
  const out = new Map<number, number>();
  try {
    await s.serving;
    for (const clients of levels) {
      const level = await runLevel(s, images, clients, Math.max(2, Math.ceil(64 / clients)), device, SCRIPTED_BOXES);
      log(
        `  ${provider} served, ${clients} concurrent: ${level.imagesPerSecond.toFixed(2)} images/s, mean batch ${level.meanBatch.toFixed(1)}`,
      );
      out.set(clients, level.imagesPerSecond);
    }
  } finally {
    await s.stop();
  }
  return out;
}

async function main(): Promise<number> {
  const o = parseOptions();
  const reasons: string[] = [];
  const usable: GpuProvider[] = [];
  for (const p of o.providers) {
    const why = await unavailable(p, o.allowSoftware);
    if (why === null) usable.push(p);
    else reasons.push(`${p}: ${why}`);
  }
  if (usable.length === 0) {
    process.stdout.write(`bench:gpu: no GPU here, nothing to measure.\n${reasons.map((r) => `- ${r}`).join('\n')}\n`);
    return 0;
  }
  const random = await benchModel(o.size, 1, log);
  const scripted = await benchModel(o.size, 5, log, SCRIPT);
  const images = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      sharp({ create: { width: 640 + 32 * i, height: 480, channels: 3, background: { r: 40 * i, g: 120, b: 200 } } })
        .png()
        .toBuffer(),
    ),
  );
  const out = [
    `## npm run bench:gpu (${o.size}, ${usable.join(', ')}; ${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}; onnxruntime-node ${ort.env.versions.common})`,
    '',
    `Batch 1: random synthetic ${o.size}, \`<OD>\`, max_new_tokens ${o.maxNewTokens} (a random model runs to it), median of ${o.runs} runs after a warm-up. Served: scripted synthetic ${o.size} (17 tokens per answer), closed-loop clients.`,
    '',
    '| provider | tokens/s greedy (decoder) | tokens/s greedy (end to end) | tokens/s 3 beams (decoder) | vision ms / image | images/s ×1 | images/s ×8 | images/s ×32 | ×32 / ×1 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of usable) {
    log(`== ${p}`);
    const b = await batchOne(random, p, images[0], o);
    const s = await served(scripted, p, images, [1, 8, 32]);
    const one = s.get(1)!;
    out.push(
      `| ${p} | ${b.greedyTokensPerS.toFixed(1)} | ${b.greedyEndToEnd.toFixed(1)} | ${b.beamTokensPerS.toFixed(1)} | ${b.visionMs.toFixed(1)} | ${one.toFixed(2)} | ${s.get(8)!.toFixed(2)} | ${s.get(32)!.toFixed(2)} | ${(s.get(32)! / one).toFixed(1)} |`,
    );
  }
  out.push('');
  if (reasons.length > 0) out.push(`Not measured: ${reasons.join('; ')}.`, '');
  if (usable.includes('webgpu') && gpuDeviceNodes().length === 0)
    out.push('⚠ WebGPU ran on a software adapter (--allow-software): these are not GPU figures.', '');
  out.push(await transferReport(random, o.size, log));
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:gpu failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
