/**
 * Closed-loop load against a running server (bench:serve, bench:gpu): clients that each send their
 * next Detect as soon as the last one is answered, with the server's own counters read around it.
 */
import { performance } from 'node:perf_hooks';
import { call, metricSample, scrapeMetrics, type ServerProcess } from '../test/helpers/server-process';
import type { DetectResponse__Output } from 'florence2-client/generated/florence2/v1/DetectResponse';
import { median } from './stats';

/** Three objects: 16 tokens and EOS, for every request. */
export const SCRIPT =
  'car<loc_53><loc_333><loc_933><loc_774>person<loc_100><loc_200><loc_300><loc_400>dog<loc_500><loc_600><loc_700><loc_800>';
/** Boxes every answer under {@link SCRIPT} holds. */
export const SCRIPTED_BOXES = 3;

export interface Level {
  clients: number;
  imagesPerSecond: number;
  p50: number;
  p95: number;
  meanBatch: number;
  /** Decoder time outside session.run / inside it, over this level. */
  outsideShare: number;
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

async function counters(s: ServerProcess, device: string): Promise<{ run: number; loop: number }> {
  const text = await scrapeMetrics(s);
  return {
    run: metricSample(text, 'florence2_decoder_run_seconds_total', { device }) ?? 0,
    loop: metricSample(text, 'florence2_decoder_loop_seconds_total', { device }) ?? 0,
  };
}

/** `clients` closed-loop clients, `perClient` Detect requests each, after one warm-up request per client. */
export async function runLevel(
  s: ServerProcess,
  images: Buffer[],
  clients: number,
  perClient: number,
  device: string,
  boxes: number,
): Promise<Level> {
  const detect = (image: Buffer) =>
    call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } }, { deadlineMs: 600_000 });
  await Promise.all(Array.from({ length: clients }, (_, c) => detect(images[c % images.length])));
  const before = await counters(s, device);
  const latencies: number[] = [];
  const batchSizes: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; k < perClient; k++) {
        const t = performance.now();
        const r = await detect(images[(c + k) % images.length]);
        latencies.push(performance.now() - t);
        batchSizes.push(r.meta?.batch?.requests ?? 1);
        if (r.boxes.length !== boxes) throw new Error(`expected the scripted ${boxes} boxes, got ${r.boxes.length}`);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const after = await counters(s, device);
  const inside = after.run - before.run;
  const loop = after.loop - before.loop;
  return {
    clients,
    imagesPerSecond: latencies.length / wall,
    p50: median(latencies),
    p95: percentile(latencies, 95),
    meanBatch: batchSizes.reduce((a, b) => a + b, 0) / batchSizes.length,
    outsideShare: inside > 0 ? (loop - inside) / inside : NaN,
  };
}

/** vision + encoder ms of one image alone (the best of three), the compute floor's denominator. */
export async function visionEncoderMs(s: ServerProcess, image: Buffer): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await call<object, DetectResponse__Output>(s.client, 'Detect', { image: { data: image } }, { deadlineMs: 600_000 });
    ms.push(r.meta!.timings!.vision_ms + r.meta!.timings!.encoder_ms);
  }
  return Math.min(...ms);
}
