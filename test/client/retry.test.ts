/**
 * Typed errors, retries and transport options of the client against scripted in-process servers:
 * UNAVAILABLE then success, INVALID_ARGUMENT never retried, the deadline bounds retries, abort,
 * a stream whose call breaks, and TLS (server-only and mutual) with openssl-made certificates.
 */
import { rejects } from '../helpers/assertions';
import { waitFor } from '../helpers/wait';
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import {
  CancelledError,
  DeadlineExceededError,
  Florence2Client,
  Florence2Error,
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
  UnknownStatusError,
  backoffMs,
  isRetryable,
} from 'florence2-client';
import { withRetries } from '../../packages/client/src/retry';
import { closedPort, type FakeServer, makeCerts, oneBox, startFakeServer, statusError } from './fake-server';
import type { StreamRequest__Output } from 'florence2-client/generated/florence2/v1/StreamRequest';
import type { StreamResponse } from 'florence2-client/generated/florence2/v1/StreamResponse';

const IMAGE = Buffer.from('not decoded by the fake server');

describe('client errors', () => {
  it('fromStatus maps each documented status to its class, with code, details and attempts', () => {
    const cases: [grpc.status, new (...a: never[]) => Florence2Error][] = [
      [grpc.status.INVALID_ARGUMENT, InvalidArgumentError],
      [grpc.status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
      [grpc.status.DEADLINE_EXCEEDED, DeadlineExceededError],
      [grpc.status.CANCELLED, CancelledError],
      [grpc.status.UNAVAILABLE, UnavailableError],
      [grpc.status.INTERNAL, InternalError],
      [grpc.status.UNIMPLEMENTED, UnknownStatusError],
      [grpc.status.UNKNOWN, UnknownStatusError],
    ];
    for (const [code, type] of cases) {
      const e = Florence2Error.fromStatus({ code, details: 'why' }, 3);
      assert.ok(e instanceof type && e instanceof Florence2Error && e instanceof Error, grpc.status[code]);
      assert.equal(e.code, code);
      assert.equal(e.details, 'why');
      assert.equal(e.attempts, 3);
      assert.equal(e.name, type.name);
      assert.equal(e.message, `${grpc.status[code]}: why`);
    }
  });

  it('InvalidArgumentError names the field from the first backticked name; stream messages work too', () => {
    const e = Florence2Error.fromStatus({ code: 3, message: '`options.num_beams` must be <= 8. Given: 9' }) as InvalidArgumentError;
    assert.equal(e.field, 'options.num_beams');
    assert.equal(e.details, '`options.num_beams` must be <= 8. Given: 9');
    assert.equal((Florence2Error.fromStatus({ code: 3, details: 'no field here' }) as InvalidArgumentError).field, undefined);
    // grpc-js ServiceError messages carry a "3 INVALID_ARGUMENT: " prefix; details win when present.
    assert.equal(Florence2Error.fromStatus({ code: 3, message: '3 INVALID_ARGUMENT: `x` bad' }).details, '`x` bad');
  });

  it('retries only UNAVAILABLE and RESOURCE_EXHAUSTED (not message-size errors)', () => {
    assert.ok(isRetryable(new UnavailableError('x')));
    assert.ok(isRetryable(new ResourceExhaustedError('queue full')));
    assert.ok(!isRetryable(new ResourceExhaustedError('Received message larger than max (70000000 vs 67108864)')));
    for (const code of [3, 4, 1, 13, 2, 12]) assert.ok(!isRetryable(Florence2Error.fromStatus({ code, details: '' })), grpc.status[code]);
  });

  it('backoff is full jitter under an exponential cap', () => {
    const policy = { baseMs: 100, maxBackoffMs: 1000 };
    assert.equal(
      backoffMs(0, policy, () => 0.999999),
      99,
    );
    assert.equal(
      backoffMs(2, policy, () => 0.5),
      200,
    );
    assert.equal(
      backoffMs(10, policy, () => 0.999999),
      999,
    );
    assert.equal(
      backoffMs(3, policy, () => 0),
      0,
    );
  });

  it('withRetries never sleeps past the deadline and reports the attempts', async () => {
    let calls = 0;
    const started = Date.now();
    const err = await rejects(
      withRetries(
        async () => {
          calls++;
          // A bare status object, as a stream reports one.
          // eslint-disable-next-line @typescript-eslint/only-throw-error
          throw { code: grpc.status.UNAVAILABLE, details: 'down' };
        },
        { policy: { maxRetries: 10, baseMs: 40_000, maxBackoffMs: 40_000 }, deadline: Date.now() + 20_000, random: () => 0.99 },
      ),
      UnavailableError,
    );
    assert.equal(calls, 1, 'a 39.6 s backoff would end after the 20 s deadline');
    assert.equal(err.attempts, 1);
    // It gave up at once: far sooner than the deadline, let alone the backoff.
    assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
  });
});

describe('client retries and transport (scripted server)', () => {
  let fake: FakeServer;
  let detectCalls = 0;
  let failFirst = 0;
  let regionCalls = 0;
  let captionCalls = 0;
  const pending: grpc.ServerUnaryCall<unknown, unknown>[] = [];

  before(async () => {
    fake = await startFakeServer({
      Detect(call, cb) {
        detectCalls++;
        if (detectCalls <= failFirst) return cb(statusError(grpc.status.UNAVAILABLE, 'a worker died during the request; retry'));
        cb(null, oneBox(call.request.kind));
      },
      DescribeRegion(_call, cb) {
        regionCalls++;
        cb(statusError(grpc.status.INVALID_ARGUMENT, '`region` must lie inside the 640x480 image. Given: x2=700'));
      },
      Caption(_call, cb) {
        captionCalls++;
        cb(statusError(grpc.status.RESOURCE_EXHAUSTED, 'the server is at its queue bound; retry later'));
      },
      Ocr(call) {
        // Never answers: for deadline and abort tests.
        pending.push(call);
      },
      Stream(call: grpc.ServerDuplexStream<StreamRequest__Output, StreamResponse>) {
        let n = 0;
        call.on('data', (m: StreamRequest__Output) => {
          n++;
          if (m.request_id === 'ok') call.write({ request_id: 'ok', result: { detect: oneBox('streamed') } });
          // The call breaks with two requests unanswered (the client's half-close is ignored).
          if (n === 3) setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'draining' }), 50);
        });
      },
    });
  });
  after(async () => fake?.stop());
  beforeEach(() => {
    detectCalls = 0;
    failFirst = 0;
    regionCalls = 0;
    captionCalls = 0;
  });

  it('retries UNAVAILABLE with backoff and succeeds', async () => {
    failFirst = 2;
    const client = new Florence2Client({ address: fake.address, retryBaseMs: 10 });
    try {
      const r = await client.detect(IMAGE, { kind: 'dense_region_captions', includeScores: true });
      assert.equal(detectCalls, 3);
      assert.equal(r.family, 'detect');
      assert.deepEqual(r.boxes, [{ x1: 1, y1: 2, x2: 30, y2: 40, label: 'DETECT_KIND_DENSE_REGION_CAPTIONS', score: 0.5 }]);
      assert.equal(r.meta.imageWidth, 64);
      assert.equal(r.meta.timings.totalMs, 0);
    } finally {
      client.close();
    }
  });

  it('gives up after maxRetries with the attempt count', async () => {
    failFirst = 100;
    const client = new Florence2Client({ address: fake.address, retryBaseMs: 5, maxRetries: 2 });
    try {
      const e = await rejects(client.detect(IMAGE), UnavailableError);
      assert.equal(e.attempts, 3);
      assert.equal(detectCalls, 3);
      assert.match(e.details, /worker died/);
      // Per-call override.
      detectCalls = 0;
      const once = await rejects(client.detect(IMAGE, { maxRetries: 0 }), UnavailableError);
      assert.equal(once.attempts, 1);
      assert.equal(detectCalls, 1);
    } finally {
      client.close();
    }
  });

  it('retries RESOURCE_EXHAUSTED too', async () => {
    const client = new Florence2Client({ address: fake.address, retryBaseMs: 5, maxRetries: 3 });
    try {
      const e = await rejects(client.caption(IMAGE), ResourceExhaustedError);
      assert.equal(captionCalls, 4);
      assert.equal(e.attempts, 4);
    } finally {
      client.close();
    }
  });

  it('never retries INVALID_ARGUMENT, and names the field', async () => {
    const client = new Florence2Client({ address: fake.address, retryBaseMs: 5 });
    try {
      const e = await rejects(client.describeRegion(IMAGE, [10, 10, 700, 100], 'description'), InvalidArgumentError);
      assert.equal(regionCalls, 1);
      assert.equal(e.attempts, 1);
      assert.equal(e.field, 'region');
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
  });

  it('a deadline covers the call (default and per call) and an AbortSignal cancels it', async () => {
    const client = new Florence2Client({ address: fake.address, defaultDeadlineMs: 200 });
    try {
      const started = Date.now();
      await rejects(client.ocr(IMAGE), DeadlineExceededError);
      // The server never answers: only the 200 ms default deadline ends the call (10x margin for a loaded machine).
      assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
      await rejects(client.ocr(IMAGE, { deadlineMs: 100 }), DeadlineExceededError);
      const ac = new AbortController();
      const arrived = pending.length;
      const cancelled = rejects(client.ocr(IMAGE, { signal: ac.signal, deadlineMs: 60_000 }), CancelledError);
      // Abort once the call is at the server, i.e. really in flight.
      await waitFor(() => pending.length > arrived, { what: 'the Ocr call to reach the fake server' });
      ac.abort();
      const e = await cancelled;
      assert.equal(e.attempts, 1);
      await rejects(client.ocr(IMAGE, { signal: ac.signal }), CancelledError);
    } finally {
      client.close();
    }
  });

  it('retries against a port nothing listens on end in UnavailableError', async () => {
    const client = new Florence2Client({ address: `127.0.0.1:${await closedPort()}`, retryBaseMs: 5, maxRetries: 2 });
    try {
      const e = await rejects(client.modelInfo(), UnavailableError);
      assert.equal(e.attempts, 3);
      await rejects(client.health('', { maxRetries: 0 }), UnavailableError);
    } finally {
      client.close();
    }
  });

  it('UNIMPLEMENTED becomes UnknownStatusError', async () => {
    const client = new Florence2Client({ address: fake.address });
    try {
      const e = await rejects(client.modelInfo(), UnknownStatusError);
      assert.equal(e.code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  it('a stream whose call fails: answered ids keep their results, the rest get the error, then it throws', async () => {
    const client = new Florence2Client({ address: fake.address });
    try {
      const got: string[] = [];
      let thrown: unknown;
      try {
        for await (const o of client.stream(
          ['ok', 'a', 'b'].map((id) => ({ id, request: { family: 'detect' as const, image: IMAGE } })),
          { maxInFlight: 8 },
        )) {
          got.push(o.ok ? `${o.id}:${o.result.family}` : `${o.id}:${o.error.codeName}`);
        }
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown instanceof UnavailableError, String(thrown));
      assert.deepEqual(got.sort(), ['a:UNAVAILABLE', 'b:UNAVAILABLE', 'ok:detect']);
    } finally {
      client.close();
    }
  });

  describe('TLS', () => {
    const certs = makeCerts();
    let tls: FakeServer | undefined;
    let mtls: FakeServer | undefined;

    before(async function () {
      if (!certs) return this.skip(); // openssl is not installed: no way to make certificates offline
      const handlers = { Detect: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, oneBox('secure')) };
      tls = await startFakeServer(
        handlers,
        grpc.ServerCredentials.createSsl(null, [{ private_key: certs.key, cert_chain: certs.cert }], false),
      );
      mtls = await startFakeServer(
        handlers,
        grpc.ServerCredentials.createSsl(certs.cert, [{ private_key: certs.key, cert_chain: certs.cert }], true),
      );
    });
    after(async () => {
      await tls?.stop();
      await mtls?.stop();
      certs?.cleanup();
    });

    it('connects with a private CA, and an insecure client cannot', async () => {
      const client = new Florence2Client({ address: `localhost:${tls!.port}`, credentials: { rootCerts: certs!.cert } });
      const insecure = new Florence2Client({ address: `localhost:${tls!.port}`, maxRetries: 0, defaultDeadlineMs: 3000 });
      try {
        assert.equal((await client.detect(IMAGE)).boxes[0].label, 'secure');
        await rejects(insecure.detect(IMAGE), Florence2Error);
      } finally {
        client.close();
        insecure.close();
      }
    });

    it('mutual TLS: the client certificate is sent; without it the handshake fails', async () => {
      const withCert = new Florence2Client({
        address: `localhost:${mtls!.port}`,
        credentials: { rootCerts: certs!.cert, privateKey: certs!.key, certChain: certs!.cert },
      });
      const without = new Florence2Client({
        address: `localhost:${mtls!.port}`,
        credentials: grpc.credentials.createSsl(certs!.cert),
        maxRetries: 0,
        defaultDeadlineMs: 3000,
      });
      try {
        assert.equal((await withCert.detect(IMAGE)).boxes[0].label, 'secure');
        await rejects(without.detect(IMAGE), Florence2Error);
      } finally {
        withCert.close();
        without.close();
      }
    });
  });
});
