/**
 * W3C trace context on outgoing calls: when the application uses OpenTelemetry, the active context
 * (its current span) goes into the call's metadata (`traceparent`, `tracestate`) through the
 * application's registered propagator, so the server's spans join the caller's trace.
 * `@opentelemetry/api` is an optional peer dependency: without it (or without an SDK registered)
 * nothing is added, and the client stays as small as it was.
 */
import type * as otel from '@opentelemetry/api';
import type * as grpc from '@grpc/grpc-js';

let api: typeof otel | null | undefined;

/** The application's @opentelemetry/api, or null when it is not installed (looked up once). */
function otelApi(): typeof otel | null {
  if (api === undefined) {
    try {
      // A require, not an import: an optional peer must not fail the client's load when absent.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      api = require('@opentelemetry/api') as typeof otel;
    } catch {
      api = null;
    }
  }
  return api;
}

const setter: otel.TextMapSetter<grpc.Metadata> = { set: (md, key, value) => md.set(key, value) };

/** Adds the active trace context to `md`, unless the caller put a `traceparent` there itself. */
export function injectTraceContext(md: grpc.Metadata): void {
  const o = otelApi();
  if (o === null || md.get('traceparent').length > 0) return;
  o.propagation.inject(o.context.active(), md, setter);
}
