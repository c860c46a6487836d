/**
 * `npm run bench:serve [-- --size base|tiny] [--clients 1,2,4,8,16] [--requests-per-client N] [--devices LIST]`
 *
 * The server as users see it: `florence2 serve` as a child process on 127.0.0.1 with a scripted
 * synthetic model (every request generates the same tokens), and closed-loop clients, each sending
 * its next Detect as soon as the last one is answered. For every concurrency level it runs twice in
 * the same session, with batching on (the server's defaults) and off (`--max-batch-rows 1`), and
 * prints images/s, p50/p95 latency and the mean batch size; beside them the compute floor
 * 1 / (vision + encoder ms of one image alone), measured in the same run, and the time of a decoder
 * step spent outside `session.run` as a share of the time inside it (from the server's counters).
 * Progress goes to stderr, the report (markdown) to stdout.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { startServerProcess } from '../test/helpers/server-process';
import type { SizeName } from '../tools/synth/sizes';
import { benchModel } from './models';
import { type Level, runLevel, SCRIPT, SCRIPTED_BOXES, visionEncoderMs } from './levels';

const started = performance.now();
const log = (line: string) => process.stderr.write(`[serve ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

const SEED = 5;

interface Options {
  size: SizeName;
  clients: number[];
  requestsPerClient: number;
  devices: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: 'base' },
      clients: { type: 'string', default: '1,2,4,8,16' },
      'requests-per-client': { type: 'string', default: '3' },
      devices: { type: 'string', default: 'cpu:0' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:serve -- [--size base|tiny (base)] [--clients 1,2,4,8,16] [--requests-per-client N (3)] [--devices LIST (cpu:0)]\n',
    );
    process.exit(0);
  }
  const size = values.size as SizeName;
  if (size !== 'base' && size !== 'tiny') throw new Error(`--size must be base or tiny, got ${values.size}`);
  const clients = values.clients.split(',').map(Number);
  if (clients.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`--clients must list positive integers, got ${values.clients}`);
  const requestsPerClient = Number(values['requests-per-client']);
  if (!Number.isInteger(requestsPerClient) || requestsPerClient < 1) throw new Error('--requests-per-client must be a positive integer');
  return { size, clients, requestsPerClient, devices: values.devices };
}

async function main(): Promise<number> {
  const o = parseOptions();
  const model = await benchModel(o.size, SEED, log, SCRIPT);
  const images = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      sharp({ create: { width: 640 + 32 * i, height: 480, channels: 3, background: { r: 40 * i, g: 120, b: 200 } } })
        .png()
        .toBuffer(),
    ),
  );
  const device = o.devices.split(',')[0];
  const maxQueue = String(Math.max(...o.clients) * 2);
  const results: Record<'on' | 'off', Level[]> = { on: [], off: [] };
  let floorMs = NaN;
  for (const mode of ['on', 'off'] as const) {
    const args = [
      '--model',
      model,
      '--devices',
      o.devices,
      '--max-queue-per-device',
      maxQueue,
      ...(mode === 'off' ? ['--max-batch-rows', '1'] : []),
    ];
    log(`batching ${mode}: starting florence2 serve ${args.join(' ')}`);
    const s = await startServerProcess(args);
    try {
      await s.serving;
      if (mode === 'on') {
        floorMs = await visionEncoderMs(s, images[0]);
        log(`vision + encoder of one image alone: ${floorMs.toFixed(0)} ms`);
      }
      for (const clients of o.clients) {
        const level = await runLevel(s, images, clients, o.requestsPerClient, device, SCRIPTED_BOXES);
        log(
          `batching ${mode}, ${clients} client(s): ${level.imagesPerSecond.toFixed(3)} images/s, p50 ${level.p50.toFixed(0)} ms, mean batch ${level.meanBatch.toFixed(2)}`,
        );
        results[mode].push(level);
      }
    } finally {
      await s.stop();
    }
  }
  const floor = 1000 / floorMs;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const out: string[] = [];
  out.push(`## npm run bench:serve (${o.size}, ${o.devices}, ${cpus().length} cores, ${cpu})`, '');
  out.push(
    `Scripted synthetic ${o.size} model, every request <OD> with 17 generated tokens; ${o.requestsPerClient} requests per client after one warm-up each.`,
  );
  out.push(`Compute floor 1 / (vision + encoder of one image alone, ${floorMs.toFixed(0)} ms) = ${floor.toFixed(3)} images/s.`, '');
  out.push(
    '| clients | images/s | × floor | p50 ms | p95 ms | mean batch | decoder outside session.run | images/s off | p50 ms off | p95 ms off | on / off |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  results.on.forEach((on, i) => {
    const off = results.off[i];
    out.push(
      `| ${on.clients} | ${on.imagesPerSecond.toFixed(3)} | ${(on.imagesPerSecond / floor).toFixed(2)} | ${on.p50.toFixed(0)} | ${on.p95.toFixed(0)} | ${on.meanBatch.toFixed(2)} | ${(100 * on.outsideShare).toFixed(1)}% | ${off.imagesPerSecond.toFixed(3)} | ${off.p50.toFixed(0)} | ${off.p95.toFixed(0)} | ${(on.imagesPerSecond / off.imagesPerSecond).toFixed(2)} |`,
    );
  });
  out.push('', '"off" is the same server with `--max-batch-rows 1` (one request per batch), in the same run.');
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:serve failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
