/**
 * Traces and request logs of a real server process: an OTLP/HTTP (JSON) receiver on loopback,
 * started here, gets the spans of a request sent with a W3C `traceparent`; with tracing off it gets
 * nothing; every log line of a request, the worker thread's included, carries its requestId and
 * traceId.
 */
import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { type ServerProcess, call, channelsReady, startServerProcess, waitForLog } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';
import { waitFor } from '../helpers/wait';
import { BATCH_ATTRIBUTES } from '../../src/common/tracing';
import type { DetectResponse__Output } from 'florence2-client/generated/florence2/v1/DetectResponse';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

/** A loopback OTLP/HTTP receiver: keeps every span posted to /v1/traces as JSON. */
async function otlpReceiver(): Promise<{ server: Server; endpoint: string; spans: OtlpSpan[]; posts: number }> {
  const state = { spans: [] as OtlpSpan[], posts: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.posts += 1;
      assert.equal(req.url, '/v1/traces');
      assert.match(String(req.headers['content-type']), /json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) state.spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    endpoint: `http://127.0.0.1:${port}`,
    get spans() {
      return state.spans;
    },
    get posts() {
      return state.posts;
    },
  };
}

/** An OTLP attribute's value as a plain JS value. */
function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  if ('intValue' in v) return Number(v.intValue);
  return Object.values(v)[0];
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${CALLER_SPAN}-01`;

describe('observability: OTLP traces and request logs (server process)', function () {
  let image: Buffer;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let s: ServerProcess | undefined;

  before(async () => {
    image = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 200, g: 90, b: 40 } } })
      .png()
      .toBuffer();
    receiver = await otlpReceiver();
  });
  after(() => receiver.server.close());
  afterEach(async () => {
    if (s && s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
    s?.client.close();
    s?.health.close();
    s = undefined;
  });

  async function start(args: string[], env: NodeJS.ProcessEnv): Promise<ServerProcess> {
    s = await startServerProcess(['--devices', 'cpu', '--model', await carTiny(), '--log-level', 'debug', ...args], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '20',
      ...env,
    });
    await s.serving;
    await channelsReady(s);
    return s;
  }

  it('exports the RPC span, child of the caller, with its stages and their batch; logs carry requestId and traceId, the worker too', async () => {
    // The batch gathers for up to 5 ms, so even a request alone has a batch_wait span (set here, not left to the CPU default).
    const p = await start(['--max-queue-delay-ms', '5'], {});
    const from = p.logs.length;
    const r = await call<object, DetectResponse__Output>(
      p.client,
      'Detect',
      { image: { data: image } },
      { metadata: { traceparent: TRACEPARENT } },
    );
    const requestId = r.meta!.request_id;
    const names = ['validate', 'queue', 'batch_wait', 'inference', 'preprocess', 'vision', 'encoder', 'decode', 'postprocess'];
    const spans = await waitFor(
      () => {
        const mine = receiver.spans.filter((x) => x.traceId === TRACE_ID);
        return ['florence2.v1.Florence2/Detect', ...names].every((n) => mine.some((x) => x.name === n)) ? mine : undefined;
      },
      { what: 'the spans of the request at the OTLP receiver' },
    );
    const byName = (n: string) => {
      const hits = spans.filter((x) => x.name === n);
      assert.equal(hits.length, 1, `one ${n} span`);
      return hits[0];
    };
    const rpc = byName('florence2.v1.Florence2/Detect');
    // The caller's trace, under the caller's span; a server span with the RPC's attributes.
    assert.equal(rpc.parentSpanId, CALLER_SPAN);
    assert.equal(rpc.kind, 2); // SPAN_KIND_SERVER
    assert.equal(attr(rpc, 'rpc.system.name'), 'grpc');
    assert.equal(attr(rpc, 'rpc.method'), 'florence2.v1.Florence2/Detect');
    assert.equal(attr(rpc, 'rpc.status_code'), 'OK');
    assert.equal(attr(rpc, 'florence2.request_id'), requestId);
    assert.equal(attr(rpc, 'florence2.task'), '<OD>');
    // The stages hang where they ran: validation and queue under the RPC, the worker's under inference.
    const inference = byName('inference');
    for (const n of ['validate', 'queue', 'inference']) assert.equal(byName(n).parentSpanId, rpc.spanId, `${n} is a child of the RPC span`);
    for (const n of ['preprocess', 'vision', 'encoder', 'decode', 'postprocess'])
      assert.equal(byName(n).parentSpanId, inference.spanId, `${n} is a child of inference`);
    // batch_wait is the last part of the queue wait: under queue, ending with it, as long as meta says.
    const queue = byName('queue');
    const batchWait = byName('batch_wait');
    assert.equal(batchWait.parentSpanId, queue.spanId, 'batch_wait is a child of queue');
    assert.equal(batchWait.endTimeUnixNano, queue.endTimeUnixNano);
    const waitedMs = Number(BigInt(batchWait.endTimeUnixNano) - BigInt(batchWait.startTimeUnixNano)) / 1e6;
    assert.ok(
      Math.abs(waitedMs - r.meta!.timings!.batch_wait_ms) < 0.01,
      `batch_wait ${waitedMs} ms, meta ${r.meta!.timings!.batch_wait_ms} ms`,
    );
    assert.ok(waitedMs > 0, 'a request alone waited for others to join its batch');
    // The batch the request ran in, on the inference span and on every stage of it.
    for (const n of ['queue', 'batch_wait', 'inference', 'preprocess', 'vision', 'encoder', 'decode', 'postprocess']) {
      const sp = byName(n);
      assert.ok(Number.isInteger(attr(sp, BATCH_ATTRIBUTES.id)) && (attr(sp, BATCH_ATTRIBUTES.id) as number) >= 1, `${n}: batch id`);
      assert.equal(attr(sp, BATCH_ATTRIBUTES.requests), r.meta!.batch!.requests, `${n}: batch size`);
      assert.equal(attr(sp, BATCH_ATTRIBUTES.rows), r.meta!.batch!.rows, `${n}: batch rows`);
      assert.equal(attr(sp, BATCH_ATTRIBUTES.device), 'cpu:0', `${n}: device`);
    }
    assert.equal(attr(byName('vision'), BATCH_ATTRIBUTES.shared), false); // a batch of one shares nothing
    // The worker's stages run in order, inside the inference span (worker clock, same epoch).
    const t = (sp: OtlpSpan, k: 'startTimeUnixNano' | 'endTimeUnixNano') => BigInt(sp[k]);
    const seq = ['preprocess', 'vision', 'encoder', 'decode'].map(byName);
    for (let i = 1; i < seq.length; i++)
      assert.ok(t(seq[i], 'startTimeUnixNano') >= t(seq[i - 1], 'endTimeUnixNano'), `${seq[i].name} after ${seq[i - 1].name}`);
    assert.equal(t(seq[0], 'startTimeUnixNano'), t(inference, 'startTimeUnixNano'));
    assert.equal(t(byName('postprocess'), 'endTimeUnixNano'), t(inference, 'endTimeUnixNano'));
    assert.ok(t(byName('queue'), 'endTimeUnixNano') <= t(rpc, 'endTimeUnixNano'));

    // Logs: the request's lines from the main thread and from its worker thread.
    await waitForLog(p, { msg: 'request done', requestId }, { from });
    const lines = p.logs.slice(from).filter((l) => l.requestId === requestId);
    assert.ok(lines.length >= 2, `the request's lines: ${JSON.stringify(lines)}`);
    for (const l of lines) assert.equal(l.traceId, TRACE_ID, `traceId on ${JSON.stringify(l)}`);
    const worker = lines.find((l) => l.msg === 'request final in its batch');
    assert.ok(worker, 'a line of the worker about the request');
    assert.equal(typeof worker.thread, 'number');
    assert.equal(worker.batchId, attr(inference, BATCH_ATTRIBUTES.id));
  });

  it('with tracing off exports nothing, and the logs still carry the caller’s trace id', async () => {
    const before = receiver.posts;
    const p = await start(['--tracing', 'off'], {});
    const from = p.logs.length;
    const r = await call<object, DetectResponse__Output>(
      p.client,
      'Detect',
      { image: { data: image } },
      { metadata: { traceparent: TRACEPARENT } },
    );
    const line = await waitForLog(p, { msg: 'request final in its batch', requestId: r.meta!.request_id }, { from });
    assert.equal(line.traceId, TRACE_ID);
    assert.ok(p.logs.some((l) => l.msg === 'tracing off' && l.why === '--tracing off'));
    // A server that traced would export what it buffered at shutdown: after the exit, nothing came.
    assert.equal(await p.stop(), 0);
    assert.equal(receiver.posts, before);
  });
});
