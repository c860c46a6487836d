/**
 * The client carries the application's active OpenTelemetry context to the server (W3C
 * `traceparent` in the call metadata), through the propagator the application registered.
 */
import { strict as assert } from 'node:assert';
import { ROOT_CONTEXT, TraceFlags, context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { Florence2Client } from 'florence2-client';
import { type FakeServer, oneBox, startFakeServer } from './fake-server';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';

describe('client: trace context propagation', () => {
  let fake: FakeServer;
  let client: Florence2Client;
  const seen: Array<string | undefined> = [];

  before(async () => {
    fake = await startFakeServer({
      Detect(call, cb) {
        seen.push(call.metadata.get('traceparent')[0]?.toString());
        cb(null, oneBox());
      },
    });
    client = new Florence2Client({ address: fake.address, maxRetries: 0 });
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  after(async () => {
    client.close();
    await fake.stop();
    propagation.disable();
    context.disable();
  });
  beforeEach(() => (seen.length = 0));

  it('sends the active span as traceparent, also across the awaits inside the call', async () => {
    const active = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
    await context.with(active, () => client.detect(Buffer.from('img')));
    assert.deepEqual(seen, [`00-${TRACE_ID}-${SPAN_ID}-01`]);
  });

  it('sends none without an active span, and keeps a traceparent the caller set', async () => {
    await client.detect(Buffer.from('img'));
    const own = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-00`;
    const active = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
    await context.with(active, () => client.detect(Buffer.from('img'), { metadata: { traceparent: own } }));
    assert.deepEqual(seen, [undefined, own]);
  });
});
