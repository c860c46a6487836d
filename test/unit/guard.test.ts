/**
 * The hardening pieces on their own: the wire scan, the byte budget, per-client limits, token auth
 * the fair order of a queue, and the guarded inflate of compressed requests.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { loadFlorence2Package } from 'florence2-client/proto';
import { gzipSync, deflateSync } from 'node:zlib';
import { guardedService, isRejected, decodedBytes, RejectedMessage, scanPrefix } from '../../src/server/wire-guard';
import { inflateGuarded, installGuardedInflate } from '../../src/server/inflate-guard';
import { ByteBudget, type Ticket } from '../../src/server/budget';
import { ClientLimits } from '../../src/server/client-limits';
import { TokenAuth, parseTokens } from '../../src/server/auth';
import { fairOrder } from '../../src/server/batcher';
import { ResourceExhaustedError, RETRY_PUSHBACK_KEY } from '../../src/common/errors';

const pkg = grpc.loadPackageDefinition(loadFlorence2Package()) as unknown as {
  florence2: { v1: { Florence2: grpc.ServiceClientConstructor } };
};
const LIMITS = { maxRepeated: 32, maxStringBytes: 800, maxRequestIdBytes: 64 };
const service = guardedService('florence2.v1.Florence2', pkg.florence2.v1.Florence2.service, LIMITS);

/** `n` entries of field 2 (`classes`), each an empty string, on the wire. */
function manyClasses(n: number): Buffer {
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b[2 * i] = 0x12;
  return b;
}

describe('wire guard', () => {
  const ov = service.DetectOpenVocabulary;
  it('passes a valid message through, decoded as the proto loader decodes it, with its size', () => {
    const wire = ov.requestSerialize({ image: { data: Buffer.from([1, 2, 3]) }, classes: ['cat', 'dog'] });
    const msg = ov.requestDeserialize(wire) as { classes: string[] };
    assert.ok(!isRejected(msg));
    assert.deepEqual(msg.classes, ['cat', 'dog']);
    assert.equal(decodedBytes(msg), wire.length);
  });

  it('stops at the first entry over a repeated-field limit: 21 million classes cost well under 50 ms', () => {
    const wire = manyClasses(21_000_000);
    const t = performance.now();
    const msg = ov.requestDeserialize(wire);
    const ms = performance.now() - t;
    assert.ok(msg instanceof RejectedMessage);
    assert.equal(msg.field, 'classes');
    assert.equal(msg.reason, 'limit');
    assert.match(msg.message, /more than 32 entries/);
    // Time is the point here; the bound is 50× the measured cost (about 0.4 ms).
    assert.ok(ms < 50, `scan took ${ms} ms`);
    assert.ok(!isRejected(ov.requestDeserialize(manyClasses(32))));
  });

  it('bounds strings, request ids and repeats of singular fields, naming the field path', () => {
    const long = ov.requestSerialize({ image: { data: Buffer.alloc(1) }, classes: ['x'.repeat(801)] });
    assert.equal((ov.requestDeserialize(long) as RejectedMessage).field, 'classes');
    const stream = service.Stream;
    const id = stream.requestSerialize({ request_id: 'i'.repeat(65), request: {} });
    const r = stream.requestDeserialize(id) as RejectedMessage;
    assert.equal(r.field, 'request_id');
    assert.match(r.message, /longer than 64 bytes/);
    const nested = stream.requestSerialize({ request_id: 'a', request: { open_vocabulary: { classes: Array(33).fill('c') } } });
    const n = stream.requestDeserialize(nested) as RejectedMessage;
    assert.equal(n.field, 'request.open_vocabulary.classes');
    assert.equal(n.requestId, 'a', 'a rejected Stream request keeps its id for the answer');
    // 300 repeats of `options` (a singular field) on the wire
    const repeats = Buffer.concat(Array.from({ length: 300 }, () => Buffer.from([0x1a, 0])));
    assert.match((ov.requestDeserialize(repeats) as RejectedMessage).message, /repeats fields more than 256 times/);
  });

  it('turns unparsable bytes into a RejectedMessage instead of throwing', () => {
    const cases = [
      Buffer.from([0xff, 0xff, 0xff]), // truncated varint
      Buffer.from([0x0a, 0x10, 0x01]), // length beyond the end
      Buffer.from([0x0b, 0x0c]), // a group
      Buffer.from([0x07]), // wire type 7
      Buffer.from([0x00]), // field 0
      Buffer.from([0x0a, 0x02, 0x0a, 0x7f]), // nested Image with a bad length
    ];
    for (const c of cases) {
      const r = ov.requestDeserialize(c);
      assert.ok(r instanceof RejectedMessage, c.toString('hex'));
      assert.equal(r.reason, 'malformed');
    }
    // A length-delimited value where the schema has a varint (options.num_beams)...
    const wrongType = (ov.requestDeserialize(Buffer.from([0x1a, 0x02, 0x0a, 0x00])) as RejectedMessage).message;
    assert.match(wrongType, /wire type 2 for a uint32 field/);
    // ...and deep nesting, which the schema cannot produce (the request types are not recursive).
    let deep = Buffer.alloc(0);
    for (let i = 0; i < 20; i++) deep = Buffer.concat([Buffer.from([0x12, deep.length]), deep]);
    assert.ok(isRejected(service.Stream.requestDeserialize(deep)));
  });
});

describe('byte budget', () => {
  it('grants in arrival order, shrinks tickets, and wakes waiters as bytes come back', () => {
    const b = new ByteBudget(100);
    const a = b.tryTake(60, 'x')!;
    assert.equal(b.tryTake(50, 'y'), null);
    const granted: string[] = [];
    let t2: Ticket | null = null;
    b.take(50, 'y', (t) => {
      granted.push('y');
      t2 = t;
    });
    b.take(10, 'z', () => granted.push('z'));
    assert.deepEqual(granted, [], 'z waits behind y: strict order for the budget');
    a.resize(40);
    assert.deepEqual(granted, ['y', 'z']);
    assert.equal(b.stats().usedBytes, 100);
    t2!.release();
    t2!.release();
    assert.equal(b.stats().usedBytes, 50);
  });

  it('passes over an owner at its share and lets a cancelled waiter go', () => {
    const b = new ByteBudget(100, 50);
    b.tryTake(50, 'greedy');
    const order: string[] = [];
    const w = b.take(10, 'greedy', () => order.push('greedy'));
    b.take(10, 'polite', () => order.push('polite'));
    assert.deepEqual(order, ['polite']);
    w.cancel();
    assert.equal(b.stats().waiting, 0);
    assert.throws(() => b.take(101, 'x', () => {}), /can never fit/);
  });
});

describe('client limits', () => {
  it('bounds requests in flight per client and says when to retry', () => {
    const l = new ClientLimits({ maxInFlight: 2, ratePerSecond: 0, burst: 0 });
    const r1 = l.admit('a');
    l.admit('a');
    const e = (() => {
      try {
        l.admit('a');
      } catch (err) {
        return err as ResourceExhaustedError;
      }
      return null;
    })();
    assert.ok(e instanceof ResourceExhaustedError);
    assert.match(e.message, /client a already has 2 requests in flight/);
    assert.ok(e.metadata?.get(RETRY_PUSHBACK_KEY)[0]);
    l.admit('b');
    r1();
    r1();
    assert.equal(l.inFlight('a'), 1);
    l.admit('a');
  });

  it('rate-limits with a token bucket and a pushback of the time to the next token', () => {
    let now = 0;
    const l = new ClientLimits({ maxInFlight: 0, ratePerSecond: 10, burst: 3 }, () => now);
    for (let i = 0; i < 3; i++) l.admit('a')();
    let err: ResourceExhaustedError | null = null;
    try {
      l.admit('a');
    } catch (e) {
      err = e as ResourceExhaustedError;
    }
    assert.ok(err);
    assert.equal(err.retryAfterMs, 100);
    now += 100;
    l.admit('a')();
    assert.throws(() => l.admit('a'), ResourceExhaustedError);
  });
});

describe('token auth', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'florence2-auth-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const md = (value?: string) => {
    const m = new grpc.Metadata();
    if (value !== undefined) m.set('authorization', value);
    return m;
  };

  it('identifies a known bearer token by its client name, and nothing else', () => {
    const file = join(dir, 'tokens');
    writeFileSync(file, '# tokens\n\nsecret-1 annotator\nsecret-2\n');
    const auth = new TokenAuth(file);
    assert.equal(auth.identify(md('Bearer secret-1')), 'annotator');
    assert.equal(auth.identify(md('bearer secret-2')), 'token-4');
    for (const bad of [undefined, 'Bearer', 'Bearer secret-3', 'secret-1', 'Basic secret-1', 'Bearer secret-1 extra']) {
      assert.equal(auth.identify(md(bad)), null, String(bad));
    }
    writeFileSync(file, 'secret-3 other\n');
    assert.equal(auth.reload(), 1);
    assert.equal(auth.identify(md('Bearer secret-1')), null);
    assert.equal(auth.identify(md('Bearer secret-3')), 'other');
  });

  it('refuses a file without tokens or with a duplicate, and keeps the tokens in use', () => {
    assert.throws(() => parseTokens('# nothing\n', 'f'), /no tokens/);
    assert.throws(() => parseTokens('a\na\n', 'f'), /f:2: the same token appears twice/);
    const file = join(dir, 'tokens2');
    writeFileSync(file, 'k1\n');
    const auth = new TokenAuth(file);
    writeFileSync(file, '');
    assert.throws(() => auth.reload(), /no tokens/);
    assert.equal(auth.identify(md('Bearer k1')), 'token-1');
  });
});

describe('fair order', () => {
  it('interleaves clients round-robin, each in arrival order, the oldest first', () => {
    const q = [
      ...Array.from({ length: 5 }, (_, i) => ({ rows: 1, key: 'k', enqueued: i, client: 'greedy', id: `g${i}` })),
      { rows: 1, key: 'k', enqueued: 10, client: 'polite', id: 'p0' },
      { rows: 1, key: 'k', enqueued: 11, client: 'third', id: 't0' },
      { rows: 1, key: 'k', enqueued: 12, client: 'polite', id: 'p1' },
    ];
    assert.deepEqual(
      fairOrder(q).map((e) => e.id),
      ['g0', 'p0', 't0', 'g1', 'p1', 'g2', 'g3', 'g4'],
    );
    const one = q.filter((e) => e.client === 'greedy');
    assert.deepEqual(fairOrder(one), one);
  });
});

describe('guarded inflate of compressed requests', () => {
  const MAX = 1 << 20;
  const ovPath = service.DetectOpenVocabulary.path;
  const detect = service.Detect;
  /** What the guarded deserializer of `method` makes of what the inflate gave. */
  const outcome = async (method: grpc.MethodDefinition<unknown, unknown>, compressed: Buffer, encoding: 'gzip' | 'deflate' = 'gzip') =>
    method.requestDeserialize(await inflateGuarded(compressed, encoding, method.path, MAX));

  it('hooks into this grpc-js', () => {
    assert.equal(installGuardedInflate(), true);
  });

  it('gives back a valid message whole, gzip or deflate', async () => {
    const wire = detect.requestSerialize({ image: { data: Buffer.alloc(300_000, 7) } });
    for (const [enc, z] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      const msg = (await outcome(detect, z(wire), enc)) as { image: { data: Buffer } };
      assert.ok(!isRejected(msg), enc);
      assert.equal(msg.image.data.length, 300_000);
      assert.equal(decodedBytes(msg), wire.length);
    }
  });

  it('stops a field whose length prefix is beyond the size limit at its first chunk (size, not malformed)', async () => {
    // 64 MiB of zeros as image.data: only the first chunk is inflated.
    const header = Buffer.from([0x0a, 0x86, 0x80, 0x80, 0x20, 0x0a, 0x80, 0x80, 0x80, 0x20]);
    const bomb = gzipSync(Buffer.concat([header, Buffer.alloc(64 << 20)]), { level: 9 });
    const t0 = performance.now();
    const msg = await outcome(detect, bomb);
    const ms = performance.now() - t0;
    assert.ok(isRejected(msg));
    assert.equal(msg.reason, 'size');
    assert.equal(msg.field, 'image');
    assert.match(msg.message, /larger than 1048576 bytes/);
    console.log(`      64 MiB bomb refused after ${ms.toFixed(1)} ms`);
  });

  it('stops 21 million classes at the first chunk with the limit named', async () => {
    const msg = await outcome(service.DetectOpenVocabulary, gzipSync(manyClasses(21_000_000), { level: 9 }));
    assert.ok(isRejected(msg));
    assert.equal(msg.reason, 'limit');
    assert.equal(msg.field, 'classes');
  });

  it('refuses a message over the size limit made of fields each under it (a repeated singular field)', async () => {
    // image twice, 600 KB each: neither is over the limit, the two are.
    const one = detect.requestSerialize({ image: { data: Buffer.alloc(600_000) } });
    const msg = await outcome(detect, gzipSync(Buffer.concat([one, one])));
    assert.ok(isRejected(msg));
    assert.equal(msg.reason, 'size');
    assert.match(msg.message, /1048576 bytes \(the server's message size limit\)/);
  });

  it('answers corrupt compressed data as malformed, not as an internal error', async () => {
    const good = gzipSync(detect.requestSerialize({ image: { data: Buffer.alloc(1000, 1) } }));
    const corrupt = Buffer.from(good);
    corrupt.fill(0xff, 10, 30);
    for (const bad of [corrupt, good.subarray(0, good.length - 12), Buffer.from('not gzip at all')]) {
      const msg = await outcome(detect, bad);
      assert.ok(isRejected(msg));
      assert.equal(msg.reason, 'malformed');
    }
  });

  it('keeps a Stream request id read from the prefix, so the rejection can be answered by id', async () => {
    const stream = service.Stream;
    const run = stream.requestSerialize({
      request_id: 'r-17',
      request: { open_vocabulary: { image: { data: Buffer.alloc(10) }, classes: Array.from({ length: 40 }, () => 'x') } },
    });
    const rejection = scanPrefix(stream.path, run.subarray(0, Math.floor(run.length * 0.9)), MAX);
    assert.ok(rejection, 'the prefix already proves the limit');
    assert.equal(rejection.requestId, 'r-17');
    assert.equal(rejection.reason, 'limit');
  });

  it('a consistent prefix gets no verdict; an unknown path is never judged', () => {
    const wire = service.DetectOpenVocabulary.requestSerialize({ image: { data: Buffer.alloc(5000) }, classes: ['a'] });
    assert.equal(scanPrefix(ovPath, wire.subarray(0, 100), MAX), null);
    assert.equal(scanPrefix('/grpc.health.v1.Health/Check', Buffer.from([0xff, 0xff]), MAX), null);
  });
});
