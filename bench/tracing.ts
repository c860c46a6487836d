/**
 * What tracing costs a request, for `npm run bench`. The model never traces (the server does, on its
 * main thread), so this times the tracing calls one server request makes (src/server/service.ts:
 * its server span from the caller's `traceparent`, the validate span, queue and batch_wait, inference
 * and its five stages, the end) in three ways:
 *   no-op        the same sequence with every tracing call replaced by one that does nothing;
 *   tracing off  the real calls, tracing not started (the default);
 *   tracing on   the real calls exporting OTLP/HTTP (protobuf) to a sink on loopback started here.
 * "off − no-op" is what having tracing in the code costs a request when it is off. No-op and off take
 * turns round by round, so background load hits both alike; `on` runs last, as starting the SDK sets
 * process-wide state.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Metadata } from '@grpc/grpc-js';
import { DiagLogLevel, ROOT_CONTEXT, diag } from '@opentelemetry/api';
import {
  type BatchFacts,
  type RequestTrace,
  endRequestTrace,
  inSpan,
  recordInference,
  recordQueue,
  startRequestTrace,
  startTracing,
  withRequestTrace,
} from '../src/common/tracing';
import type { StageTimings } from '../src/florence/pipeline';
import { median } from './stats';

/** The tracing calls of one request, as service.ts makes them. */
interface Calls {
  startRequestTrace: typeof startRequestTrace;
  withRequestTrace: typeof withRequestTrace;
  inSpan: typeof inSpan;
  recordQueue: typeof recordQueue;
  recordInference: typeof recordInference;
  endRequestTrace: typeof endRequestTrace;
}

const REAL: Calls = { startRequestTrace, withRequestTrace, inSpan, recordQueue, recordInference, endRequestTrace };

const NO_TRACE: RequestTrace = { span: null, ctx: ROOT_CONTEXT, traceId: undefined };
const NOOP: Calls = {
  startRequestTrace: () => NO_TRACE,
  withRequestTrace: (_t, fn) => fn(),
  inSpan: (_name, fn) => fn(),
  recordQueue: () => {},
  recordInference: () => {},
  endRequestTrace: () => {},
};

const TIMINGS: StageTimings = { preprocess: 2, vision: 3, encoder: 1, decoder: 20, postprocess: 0.5, total: 26.5 };
const BATCH: BatchFacts = { id: 1, requests: 1, rows: 3, steps: 7, device: 'cpu:0' };

/** One request's tracing: a caller that sent a traceparent (the off path reads it for the logs). */
async function oneRequest(c: Calls, metadata: Metadata, i: number): Promise<void> {
  const t = c.startRequestTrace('florence2.v1.Florence2/Detect', metadata, { 'florence2.request_id': `r${i}` });
  await c.withRequestTrace(t, async () => {
    await c.inSpan('validate', async () => i);
    const now = performance.now();
    c.recordQueue(t, { from: now - 3, to: now, batchWaitMs: 2 }, BATCH);
    c.recordInference(t, performance.timeOrigin + now, TIMINGS, BATCH);
    c.endRequestTrace(t, 'OK', { 'florence2.task': '<OD>', 'florence2.device': 'cpu:0' });
  });
}

/**
 * µs per request over `n` requests. Every 8 requests the loop yields to the event loop, as a server
 * does between requests, so the exporter's timers and sockets keep pace (about 70 spans at a time
 * against a queue of 2048) instead of dropping spans.
 */
async function timeCalls(c: Calls, metadata: Metadata, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await oneRequest(c, metadata, i);
    if (i % 8 === 7) await yieldToLoop();
  }
  return ((performance.now() - t0) * 1000) / n;
}

export interface TracingCost {
  /** Median µs per request of each way, over the rounds. */
  noopUs: number;
  offUs: number;
  onUs: number;
  /** OTLP requests and bytes the loopback sink received while on (the `on` row did export). */
  exportPosts: number;
  exportBytes: number;
  /** What the SDK warned about while on (dropped spans, failed exports); none expected. */
  warnings: string[];
  requests: number;
  rounds: number;
}

/**
 * Runs the three ways, `rounds` rounds each after a warm-up round: `requests` requests a round for
 * no-op and off, a twentieth of that for on (a hundred times dearer).
 */
export async function tracingCost(log: (line: string) => void, requests = 100_000, rounds = 7): Promise<TracingCost> {
  const metadata = new Metadata();
  metadata.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  // Warm both paths (JIT) before timing.
  await timeCalls(NOOP, metadata, requests);
  await timeCalls(REAL, metadata, requests);
  const noop: number[] = [];
  const off: number[] = [];
  for (let r = 0; r < rounds; r++) {
    noop.push(await timeCalls(NOOP, metadata, requests));
    off.push(await timeCalls(REAL, metadata, requests));
    log(`  tracing round ${r + 1}/${rounds}: no-op ${noop[r].toFixed(2)} µs, off ${off[r].toFixed(2)} µs per request`);
  }

  // On: the real SDK and OTLP exporter, posting to a sink that counts what it receives.
  let exportedBytes = 0;
  let posts = 0;
  const sink = createServer((req, res) => {
    req.on('data', (c: Buffer) => (exportedBytes += c.length));
    req.on('end', () => {
      posts += 1;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  // The exporter reads these from process.env itself; the batch processor keeps its defaults.
  const settings: Record<string, string> = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  };
  const saved = Object.fromEntries(Object.keys(settings).map((k) => [k, process.env[k]]));
  Object.assign(process.env, settings);
  const warnings: string[] = [];
  const keep = (message: string) => void warnings.push(message);
  diag.setLogger({ error: keep, warn: keep, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  const handle = startTracing('on', { version: 'bench' });
  const onRequests = Math.max(1, Math.round(requests / 20));
  const on: number[] = [];
  try {
    await timeCalls(REAL, metadata, onRequests); // warm-up
    for (let r = 0; r < rounds; r++) on.push(await timeCalls(REAL, metadata, onRequests));
    log(`  tracing on: ${on.map((x) => x.toFixed(1)).join(', ')} µs per request`);
  } finally {
    await handle.shutdown();
    diag.disable();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    sink.close();
  }
  log(`  tracing on exported ${posts} OTLP requests, ${(exportedBytes / 2 ** 20).toFixed(1)} MiB`);
  return {
    noopUs: median(noop),
    offUs: median(off),
    onUs: median(on),
    exportPosts: posts,
    exportBytes: exportedBytes,
    warnings,
    requests,
    rounds,
  };
}

/** The report's section: per request, and against the request times the model tables measured. */
export function tracingReport(c: TracingCost, requestMs: Array<{ size: string; ms: number; spreadPct: number }>): string {
  const us = (x: number) => (Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
  const share = (extraUs: number, ms: number) => {
    const pct = (extraUs / 1000 / ms) * 100;
    return Math.abs(pct) >= 0.1 ? `${pct.toFixed(1)}%` : `${pct.toPrecision(2)}%`;
  };
  const cols = requestMs.map((r) => `share of a ${r.size} request (${r.ms.toFixed(0)} ms, spread ±${r.spreadPct.toFixed(1)}%)`);
  const head = ['', 'µs per request', 'over no-op, µs', ...cols];
  const row = (label: string, x: number, vsNoop: boolean) => [
    label,
    us(x),
    vsNoop ? us(x - c.noopUs) : '—',
    ...requestMs.map((r) => (vsNoop ? share(x - c.noopUs, r.ms) : '—')),
  ];
  const table = [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...[
      row('no-op', c.noopUs, false),
      row('tracing off (the default)', c.offUs, true),
      row('tracing on, OTLP to loopback', c.onUs, true),
    ].map((cells) => `| ${cells.join(' | ')} |`),
  ];
  const sent = `${c.exportPosts} OTLP requests, ${(c.exportBytes / 2 ** 20).toFixed(1)} MiB`;
  return [
    `### Tracing: what its calls cost one server request (main thread; median of ${c.rounds} rounds of ${c.requests} requests, ${Math.round(c.requests / 20)} when on)`,
    '',
    table.join('\n'),
    '',
    "- no-op: the tracing calls of src/server/service.ts replaced by empty functions; off: the real calls with tracing not started (they read the caller's `traceparent` for the log lines and return); on: the OpenTelemetry SDK with its default batching, exporting OTLP/HTTP protobuf to a loopback sink (10 spans per request; " +
      `the sink got ${sent}; ${c.warnings.length === 0 ? 'the SDK reported no dropped spans or failed exports' : `the SDK warned: ${c.warnings.join('; ')}`}).`,
    '- A request\'s time is "ours greedy" total ms per image above; its spread is, per image, the median absolute deviation of the timed runs over their median, then the median over the images. A cost far below that spread cannot be seen in a request\'s time.',
    '',
  ].join('\n');
}
