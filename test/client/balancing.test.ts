/**
 * Balancing and keepalive options of the client against scripted in-process servers: the policy a
 * target gets by default, calls spread round-robin over an address list (or kept on one server with
 * pick_first), bad option values named, and keepalive failing calls on a connection whose server
 * went silent (a frozen TCP proxy) instead of leaving them to their deadline.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import {
  DEFAULT_KEEPALIVE_TIME_MS,
  DeadlineExceededError,
  Florence2Client,
  UnavailableError,
  defaultLoadBalancing,
  type Florence2ClientOptions,
} from 'florence2-client';
import { waitFor } from '../helpers/wait';
import { type FakeServer, startFakeServer } from './fake-server';

const IMAGE = Buffer.from('not decoded by the fake server');

describe('client balancing: default policy and option checks', () => {
  it('round_robin for dns: targets and address lists, pick_first otherwise', () => {
    const cases: Array<[string, string]> = [
      ['dns:///florence2-server-headless.ml.svc:50051', 'round_robin'],
      ['dns://10.96.0.10/florence2.ml.svc:50051', 'round_robin'],
      ['DNS:///host:1', 'round_robin'],
      ['ipv4:10.0.0.1:50051,10.0.0.2:50051', 'round_robin'],
      ['ipv6:[::1]:50051,[::2]:50051', 'round_robin'],
      ['ipv4:10.0.0.1:50051', 'pick_first'],
      ['localhost:50051', 'pick_first'],
      ['florence2.ml.svc:50051', 'pick_first'],
      ['unix:///run/florence2.sock', 'pick_first'],
    ];
    for (const [target, policy] of cases) assert.equal(defaultLoadBalancing(target), policy, target);
    const policyOf = (o: Florence2ClientOptions) => {
      const c = new Florence2Client(o);
      c.close();
      return c.loadBalancing;
    };
    assert.equal(policyOf({ address: 'dns:///localhost:1' }), 'round_robin');
    assert.equal(policyOf({ address: 'dns:///localhost:1', loadBalancing: 'pick_first' }), 'pick_first');
    assert.equal(policyOf({ address: 'localhost:1', loadBalancing: 'round_robin' }), 'round_robin');
    assert.equal(DEFAULT_KEEPALIVE_TIME_MS, 30_000);
  });

  it('a bad balancing or keepalive option is a TypeError naming it', () => {
    const bad = (o: Partial<Florence2ClientOptions>, re: RegExp) =>
      assert.throws(
        () => new Florence2Client({ address: 'localhost:1', ...o }),
        (e: unknown) => {
          assert.ok(e instanceof TypeError, String(e));
          assert.match(e.message, re);
          return true;
        },
      );
    bad({ loadBalancing: 'random' as never }, /^Florence2Client: loadBalancing must be 'round_robin' or 'pick_first', got "random"$/);
    bad({ keepaliveTimeMs: -1 }, /^Florence2Client: keepaliveTimeMs must be an integer >= 0 \(0 = no keepalive\), got -1$/);
    bad({ keepaliveTimeMs: 1.5 }, /keepaliveTimeMs must be an integer >= 0/);
    bad({ keepaliveTimeMs: '30000' as never }, /keepaliveTimeMs must be an integer >= 0 .*got "30000"$/);
    bad({ keepaliveTimeoutMs: 0 }, /^Florence2Client: keepaliveTimeoutMs must be an integer >= 1, got 0$/);
    // 0 turns keepalive off, and is no error
    new Florence2Client({ address: 'localhost:1', keepaliveTimeMs: 0 }).close();
  });
});

describe('client balancing: over scripted servers', () => {
  const servers: FakeServer[] = [];
  const calls = [0, 0, 0];

  before(async () => {
    for (let i = 0; i < 3; i++)
      servers.push(
        await startFakeServer({
          GetModelInfo(_call, cb) {
            calls[i]++;
            cb(null, { model: `server ${i}` });
          },
        }),
      );
  });
  after(async () => Promise.all(servers.map((s) => s.stop())));
  beforeEach(() => calls.fill(0));

  const list = () => `ipv4:${servers.map((s) => s.address).join(',')}`;

  it('an address list gets round_robin: once every server is connected, calls take turns', async () => {
    const client = new Florence2Client({ address: list() });
    try {
      assert.equal(client.loadBalancing, 'round_robin');
      // Connections come up one by one; calls go to the connected ones until all are.
      for (let n = 0; calls.some((c) => c === 0); n++) {
        assert.ok(n < 200, `every server reached within 200 calls (${calls.join(', ')})`);
        await client.modelInfo();
      }
      calls.fill(0);
      for (let n = 0; n < 30; n++) await client.modelInfo();
      assert.deepEqual(calls, [10, 10, 10]);
    } finally {
      client.close();
    }
  });

  it('pick_first keeps every call on one server', async () => {
    const client = new Florence2Client({ address: list(), loadBalancing: 'pick_first' });
    try {
      for (let n = 0; n < 30; n++) await client.modelInfo();
      assert.deepEqual(
        calls.filter((c) => c > 0),
        [30],
      );
    } finally {
      client.close();
    }
  });

  it('dns:/// targets resolve and connect (round_robin over what the name gives)', async () => {
    const client = new Florence2Client({ address: `dns:///localhost:${servers[1].port}` });
    try {
      assert.equal(client.loadBalancing, 'round_robin');
      assert.equal((await client.modelInfo({ deadlineMs: 10_000 })).model, 'server 1');
    } finally {
      client.close();
    }
  });
});

describe('client keepalive', () => {
  let fake: FakeServer;
  const received: grpc.ServerUnaryCall<unknown, unknown>[] = [];
  /** A TCP proxy to the fake server that can go silent: its sockets stay open but carry nothing, as with a lost node. */
  let proxy: net.Server;
  const sockets: net.Socket[] = [];
  let frozen = false;

  before(async () => {
    fake = await startFakeServer({
      Ocr(call) {
        // Never answers: the call stays in flight until the client gives up on it.
        received.push(call);
      },
    });
    proxy = net.createServer((downstream) => {
      const upstream = net.connect(fake.port, '127.0.0.1');
      sockets.push(downstream, upstream);
      downstream.on('data', (d) => frozen || upstream.write(d));
      upstream.on('data', (d) => frozen || downstream.write(d));
      const end = () => (downstream.destroy(), upstream.destroy());
      downstream.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((res) => proxy.listen(0, '127.0.0.1', res));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((res) => proxy.close(() => res()));
    await fake.stop();
  });
  beforeEach(() => {
    frozen = false;
    received.length = 0;
  });

  /** Starts an Ocr call through the proxy, waits until the server has it, then freezes the proxy. */
  async function callThenFreeze(options: Partial<Florence2ClientOptions>, deadlineMs: number): Promise<unknown> {
    const address = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const client = new Florence2Client({ address, maxRetries: 0, ...options });
    try {
      await client.waitForReady(10_000);
      const outcome = client.ocr(IMAGE, { deadlineMs }).then(
        () => assert.fail('the server never answers'),
        (e: unknown) => e,
      );
      await waitFor(() => received.length === 1, { what: 'the call to reach the server' });
      frozen = true;
      return await outcome;
    } finally {
      client.close();
    }
  }

  it('a silent connection fails its calls UNAVAILABLE (retryable) long before their deadline', async () => {
    const err = await callThenFreeze({ keepaliveTimeMs: 100, keepaliveTimeoutMs: 100 }, 60_000);
    assert.ok(err instanceof UnavailableError, String(err));
  });

  it('without keepalive the same call waits for its deadline', async () => {
    const err = await callThenFreeze({ keepaliveTimeMs: 0 }, 1000);
    assert.ok(err instanceof DeadlineExceededError, String(err));
  });
});
