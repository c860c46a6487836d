/**
 * OpenTelemetry tracing of requests: one server span per request, named after its RPC, with child
 * spans for its stages (validate, queue → batch_wait, inference → preprocess, vision, encoder,
 * decode, postprocess), exported with OTLP over HTTP. Off unless configured; when off, every helper
 * here returns at a null check, so requests pay nothing but reading `traceparent` for their logs.
 *
 * The model stages run in a worker thread, once per batch, so their spans are made here on the main
 * thread after the fact, from the times the worker measured (`startedAt` + `StageTimings`): the
 * worker needs no SDK and no exporter of its own, a batch's shared stages appear in the trace of each
 * request that rode it (with the batch id, size and `florence2.stage.shared`), and a request whose
 * result never arrives leaves no half-made spans behind.
 */
import {
  type Attributes,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter as OtlpHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpHttpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  ATTR_ERROR_TYPE,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import type { StageTimings } from '../florence/pipeline';

/** `auto`: on when the standard OTEL_* variables ask for OTLP traces; `on`/`off` decide alone. */
export const TRACING_MODES = ['auto', 'on', 'off'] as const;

/** One of {@link TRACING_MODES}. */
export type TracingMode = (typeof TRACING_MODES)[number];

const TRUE = /^\s*true\s*$/i;

/**
 * Whether tracing runs, and why (for the startup log). `auto` follows the OpenTelemetry SDK's
 * environment: OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off; an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp turn it on.
 */
export function tracingWanted(mode: TracingMode, env: NodeJS.ProcessEnv): { on: boolean; why: string } {
  if (mode === 'off') return { on: false, why: '--tracing off' };
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase());
  if (mode === 'on') return { on: true, why: '--tracing on' };
  if (TRUE.test(env.OTEL_SDK_DISABLED ?? '')) return { on: false, why: 'OTEL_SDK_DISABLED=true' };
  if (exporters.includes('none')) return { on: false, why: 'OTEL_TRACES_EXPORTER=none' };
  if (exporters.includes('otlp')) return { on: true, why: 'OTEL_TRACES_EXPORTER=otlp' };
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'])
    if ((env[name] ?? '').trim() !== '') return { on: true, why: `${name} is set` };
  return { on: false, why: 'no OTLP endpoint configured (OTEL_EXPORTER_OTLP_ENDPOINT)' };
}

/** The OTLP exporter the standard protocol variables name (default http/protobuf, as the spec says). */
function exporterFor(env: NodeJS.ProcessEnv): { exporter: SpanExporter; protocol: string } {
  const name = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (env[name] ?? '').trim() || 'http/protobuf';
  // Both exporters read the endpoint, headers, timeout and compression from OTEL_* themselves.
  if (protocol === 'http/protobuf') return { exporter: new OtlpHttpProtoExporter(), protocol };
  if (protocol === 'http/json') return { exporter: new OtlpHttpJsonExporter(), protocol };
  throw new RangeError(`${name}: must be http/protobuf or http/json (OTLP over gRPC is not bundled), got ${JSON.stringify(protocol)}`);
}

/** The tracer while tracing is on; null is the off switch every helper checks first. */
let tracer: Tracer | null = null;
let provider: BasicTracerProvider | null = null;
/** Reads `traceparent` even when tracing is off, so log lines still carry the caller's trace id. */
const w3c = new W3CTraceContextPropagator();

/** What {@link startTracing} set up. */
export interface TracingHandle {
  readonly on: boolean;
  /** Why it is on or off, for the startup log. */
  readonly why: string;
  /** The OTLP protocol in use, when on. */
  readonly protocol?: string;
  /** Exports what is buffered and stops; idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Starts the tracer provider when {@link tracingWanted} says so: W3C trace context, AsyncLocalStorage
 * context, a batching OTLP exporter (OTEL_BSP_* tune it), the sampler from OTEL_TRACES_SAMPLER
 * (default: follow the caller's sampled flag, else sample), the resource from OTEL_SERVICE_NAME /
 * OTEL_RESOURCE_ATTRIBUTES over `service.name=florence2-server`.
 */
export function startTracing(mode: TracingMode, service: { version: string }, env: NodeJS.ProcessEnv = process.env): TracingHandle {
  const wanted = tracingWanted(mode, env);
  if (!wanted.on || tracer) return { ...wanted, shutdown: async () => {} };
  const { exporter, protocol } = exporterFor(env);
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'florence2-server', [ATTR_SERVICE_VERSION]: service.version }))
    .merge(detectResources({ detectors: [envDetector] }));
  const p = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(p);
  propagation.setGlobalPropagator(w3c);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  provider = p;
  tracer = p.getTracer('florence2-server', service.version);
  let done: Promise<void> | null = null;
  return {
    on: true,
    why: wanted.why,
    protocol,
    shutdown: () =>
      (done ??= (async () => {
        tracer = null;
        provider = null;
        await p.shutdown();
        trace.disable();
        propagation.disable();
        context.disable();
      })()),
  };
}

/** True while spans are recorded. */
export function tracingOn(): boolean {
  return tracer !== null;
}

/** What carries an incoming request's headers: gRPC Metadata, or anything with `get(key) → values`. */
export interface HeaderCarrier {
  get(key: string): ReadonlyArray<string | Buffer> | string | string[] | undefined;
}

const getter: TextMapGetter<HeaderCarrier> = {
  keys: () => ['traceparent', 'tracestate'],
  get(carrier, key) {
    const v = carrier.get(key);
    if (v === undefined || typeof v === 'string') return v;
    const first = v[0];
    return first === undefined ? undefined : first.toString();
  },
};

/** One request's trace: its server span (null when tracing is off) and the trace id for its log lines. */
export interface RequestTrace {
  readonly span: Span | null;
  /** The context its stage spans hang from. */
  readonly ctx: Context;
  /** Ours when tracing is on; otherwise the caller's, from `traceparent`, if it sent one. */
  readonly traceId: string | undefined;
}

/**
 * The server span of a request to `service/method` (e.g. `florence2.v1.Florence2/Detect`), child of
 * the caller's span when its headers carry a `traceparent`.
 */
export function startRequestTrace(fullMethod: string, headers: HeaderCarrier, attributes: Attributes = {}): RequestTrace {
  const parent = w3c.extract(context.active(), headers, getter);
  if (!tracer) return { span: null, ctx: parent, traceId: trace.getSpanContext(parent)?.traceId };
  const span = tracer.startSpan(
    fullMethod,
    {
      kind: SpanKind.SERVER,
      attributes: { [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC, [ATTR_RPC_METHOD]: fullMethod, ...attributes },
    },
    parent,
  );
  return { span, ctx: trace.setSpan(parent, span), traceId: span.spanContext().traceId };
}

/** Runs `fn` with the request's span active, so spans started inside (queue) are its children. */
export function withRequestTrace<T>(t: RequestTrace, fn: () => T): T {
  return t.span ? context.with(t.ctx, fn) : fn();
}

/** gRPC codes a server span reports as an error (the RPC semantic conventions' server list). */
const SERVER_ERROR_CODES = new Set(['UNKNOWN', 'DEADLINE_EXCEEDED', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS']);

/** Ends the server span with the status sent (`OK` or a gRPC code name) and the request's facts. */
export function endRequestTrace(t: RequestTrace, status: string, attributes: Attributes = {}, message?: string): void {
  if (!t.span) return;
  t.span.setAttributes({ [ATTR_RPC_STATUS_CODE]: status, ...attributes });
  if (status !== 'OK') t.span.setAttribute(ATTR_ERROR_TYPE, status);
  if (SERVER_ERROR_CODES.has(status)) t.span.setStatus({ code: SpanStatusCode.ERROR, message });
  t.span.end();
}

/** A live span under the active context (null when off); end it with {@link endSpan}. */
export function startSpan(name: string, attributes?: Attributes): Span | null {
  return tracer ? tracer.startSpan(name, { attributes }) : null;
}

/** Ends a span from {@link startSpan}, as failed when `error` is given. */
export function endSpan(span: Span | null, error?: unknown, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  if (error !== undefined) {
    const message = error instanceof Error ? error.message : JSON.stringify(error);
    span.recordException(error instanceof Error ? error : message);
    span.setStatus({ code: SpanStatusCode.ERROR, message });
  }
  span.end();
}

/** `fn` inside a span under the active context (a stage the main thread runs, e.g. validation). */
export async function inSpan<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const span = startSpan(name);
  if (!span) return fn();
  try {
    const out = await context.with(trace.setSpan(context.active(), span), fn);
    endSpan(span);
    return out;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}

/** The batch a request ran in, as span attributes. */
export interface BatchFacts {
  id: number;
  requests: number;
  rows: number;
  steps: number;
  device: string;
}

/** Attribute names of the batch facts, one home for the span and its test. */
export const BATCH_ATTRIBUTES = {
  id: 'florence2.batch.id',
  requests: 'florence2.batch.requests',
  rows: 'florence2.batch.rows',
  steps: 'florence2.batch.decoder_steps',
  device: 'florence2.device',
  shared: 'florence2.stage.shared',
} as const;

function batchAttributes(b: BatchFacts): Attributes {
  return {
    [BATCH_ATTRIBUTES.id]: b.id,
    [BATCH_ATTRIBUTES.requests]: b.requests,
    [BATCH_ATTRIBUTES.rows]: b.rows,
    [BATCH_ATTRIBUTES.steps]: b.steps,
    [BATCH_ATTRIBUTES.device]: b.device,
  };
}

/**
 * The queue wait as it was measured (performance.now() clock): `queue`, and its last part `batch_wait`.
 * The times are given to the SDK as epoch ms (timeOrigin + t), as the worker's are: a performance.now()
 * number it corrects per span by a Date.now() offset of 1 ms resolution, so a child given the same end
 * as its parent could end up to a millisecond after it.
 */
export function recordQueue(t: RequestTrace, queued: { from: number; to: number; batchWaitMs: number }, batch: BatchFacts): void {
  if (!tracer || !t.span) return;
  const attributes = batchAttributes(batch);
  const epoch = (ms: number) => performance.timeOrigin + ms;
  const queue = tracer.startSpan('queue', { startTime: epoch(queued.from), attributes }, t.ctx);
  if (queued.batchWaitMs > 0) {
    const wait = tracer.startSpan(
      'batch_wait',
      { startTime: epoch(queued.to - queued.batchWaitMs), attributes },
      trace.setSpan(t.ctx, queue),
    );
    wait.end(epoch(queued.to));
  }
  queue.end(epoch(queued.to));
}

/**
 * The worker's stages of a request, placed from the worker's own clock: `inference` from the batch's
 * start to this request's result, preprocess → vision → encoder (the batch's, shared when it had
 * several requests), decode (to this request's last step) and its own postprocess at the end.
 */
export function recordInference(t: RequestTrace, startedAt: number, timings: StageTimings, batch: BatchFacts): void {
  if (!tracer || !t.span) return;
  const attributes = batchAttributes(batch);
  const end = startedAt + timings.total;
  const inference = tracer.startSpan('inference', { startTime: startedAt, attributes }, t.ctx);
  const under = trace.setSpan(t.ctx, inference);
  const shared = batch.requests > 1;
  const stage = (name: string, from: number, ms: number, isShared: boolean) =>
    tracer!
      .startSpan(name, { startTime: from, attributes: { ...attributes, [BATCH_ATTRIBUTES.shared]: isShared } }, under)
      .end(from + Math.max(0, ms));
  let at = startedAt;
  for (const [name, ms] of [
    ['preprocess', timings.preprocess],
    ['vision', timings.vision],
    ['encoder', timings.encoder],
  ] as const) {
    stage(name, at, ms, shared);
    at += ms;
  }
  stage('decode', at, timings.decoder, false);
  stage('postprocess', end - timings.postprocess, timings.postprocess, false);
  inference.end(end);
}

/** Exports buffered spans now (tests, shutdown). */
export async function flushTracing(): Promise<void> {
  await provider?.forceFlush();
}
