/**
 * Channel options for talking to several servers: the load-balancing policy (which a target gets by
 * default) and keepalive. gRPC keeps one long-lived HTTP/2 connection per server, so balancing is
 * the client's job: `round_robin` connects to every address the target resolves to and spreads
 * calls over those that are connected; `pick_first` uses one.
 */
import type * as grpc from '@grpc/grpc-js';

/** The load-balancing policies of grpc-js that make sense for a Florence-2 fleet. */
export const LOAD_BALANCING_POLICIES = ['round_robin', 'pick_first'] as const;
export type LoadBalancing = (typeof LOAD_BALANCING_POLICIES)[number];

/** Default keepalive: a ping after 30 s without an answer on a connection with calls in flight, dropped after 10 s more. */
export const DEFAULT_KEEPALIVE_TIME_MS = 30_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

/**
 * The policy a target gets when none is asked for: `round_robin` for a `dns:` target (a headless
 * Service's name resolves to every ready pod) and for a list of addresses
 * (`ipv4:10.0.0.1:50051,10.0.0.2:50051`); `pick_first` otherwise. A bare `host:port` keeps
 * `pick_first`, as grpc-js does: `localhost` resolving to ::1 and 127.0.0.1 is one server, not two.
 */
export function defaultLoadBalancing(target: string): LoadBalancing {
  const t = target.trim();
  if (/^dns:/i.test(t)) return 'round_robin';
  const list = /^ipv[46]:(.*)$/i.exec(t);
  if (list && list[1].split(',').length > 1) return 'round_robin';
  return 'pick_first';
}

/** The balancing and keepalive settings of a client. */
export interface BalancingOptions {
  loadBalancing?: LoadBalancing;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
}

const nonNegativeInteger = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * grpc-js channel options for `target`: the policy as a default service config, and keepalive.
 * Throws TypeError naming the option when a value is invalid.
 */
export function balancingChannelOptions(
  target: string,
  options: BalancingOptions,
): { policy: LoadBalancing; channelOptions: grpc.ChannelOptions } {
  const { loadBalancing, keepaliveTimeMs = DEFAULT_KEEPALIVE_TIME_MS, keepaliveTimeoutMs = DEFAULT_KEEPALIVE_TIMEOUT_MS } = options;
  if (loadBalancing !== undefined && !(LOAD_BALANCING_POLICIES as readonly unknown[]).includes(loadBalancing))
    throw new TypeError(`Florence2Client: loadBalancing must be 'round_robin' or 'pick_first', got ${JSON.stringify(loadBalancing)}`);
  if (!nonNegativeInteger(keepaliveTimeMs))
    throw new TypeError(
      `Florence2Client: keepaliveTimeMs must be an integer >= 0 (0 = no keepalive), got ${JSON.stringify(keepaliveTimeMs)}`,
    );
  if (!nonNegativeInteger(keepaliveTimeoutMs) || keepaliveTimeoutMs === 0)
    throw new TypeError(`Florence2Client: keepaliveTimeoutMs must be an integer >= 1, got ${JSON.stringify(keepaliveTimeoutMs)}`);
  const policy = loadBalancing ?? defaultLoadBalancing(target);
  const channelOptions: grpc.ChannelOptions = {
    // The default service config: a resolver that returns one of its own (a DNS TXT record) wins.
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ [policy]: {} }] }),
  };
  if (keepaliveTimeMs > 0) {
    // Pings only while calls are in flight: a connection to a server that vanished without closing
    // it (a lost node) fails those calls as UNAVAILABLE, which is retried, instead of leaving them
    // to their deadline. Idle connections are not pinged, which servers and proxies may punish.
    channelOptions['grpc.keepalive_time_ms'] = keepaliveTimeMs;
    channelOptions['grpc.keepalive_timeout_ms'] = keepaliveTimeoutMs;
  }
  return { policy, channelOptions };
}
