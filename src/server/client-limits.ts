/**
 * Per-client bounds, where a client is an authenticated identity, else the peer address: requests in
 * flight (from arrival until answered) and a token-bucket rate. Refusals are RESOURCE_EXHAUSTED with
 * the time to wait in `grpc-retry-pushback-ms`.
 */
import { ResourceExhaustedError } from '../common/errors';

export interface ClientLimitOptions {
  /** Requests of one client in flight at once; 0 = unlimited. */
  maxInFlight: number;
  /** Requests per second a client may start, on average; 0 = unlimited. */
  ratePerSecond: number;
  /** Requests a client may start at once after idling (the bucket's size); 0 = one second's worth. */
  burst: number;
}

interface ClientState {
  inFlight: number;
  tokens: number;
  /** When `tokens` was last brought up to date (performance.now()). */
  at: number;
}

/** Above this many known clients, idle ones are forgotten (their state is the default anyway). */
const SWEEP_AT = 10_000;

export class ClientLimits {
  private readonly clients = new Map<string, ClientState>();
  private readonly burst: number;

  constructor(
    private readonly options: ClientLimitOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = options.burst > 0 ? options.burst : Math.max(1, Math.ceil(options.ratePerSecond));
  }

  /** Admits one request of `client`, or throws a ResourceExhaustedError. Call `release` once when it is answered. */
  admit(client: string): () => void {
    const s = this.state(client);
    if (this.options.maxInFlight > 0 && s.inFlight >= this.options.maxInFlight) {
      throw new ResourceExhaustedError(
        `client ${client} already has ${s.inFlight} requests in flight (the server's limit per client is ${this.options.maxInFlight}); retry when one is answered`,
        { retryAfterMs: 100 },
      );
    }
    if (this.options.ratePerSecond > 0) {
      this.refill(s);
      if (s.tokens < 1) {
        throw new ResourceExhaustedError(
          `client ${client} is over its rate limit of ${this.options.ratePerSecond} requests/s (burst ${this.burst}); retry later`,
          { retryAfterMs: ((1 - s.tokens) / this.options.ratePerSecond) * 1000 },
        );
      }
      s.tokens -= 1;
    }
    s.inFlight += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.inFlight -= 1;
    };
  }

  /** Requests in flight of a client (for tests and gauges). */
  inFlight(client: string): number {
    return this.clients.get(client)?.inFlight ?? 0;
  }

  private state(client: string): ClientState {
    let s = this.clients.get(client);
    if (!s) {
      if (this.clients.size >= SWEEP_AT) this.sweep();
      s = { inFlight: 0, tokens: this.burst, at: this.now() };
      this.clients.set(client, s);
    }
    return s;
  }

  /** Brings a client's bucket up to now. */
  private refill(s: ClientState): void {
    const t = this.now();
    s.tokens = Math.min(this.burst, s.tokens + ((t - s.at) / 1000) * this.options.ratePerSecond);
    s.at = t;
  }

  private sweep(): void {
    for (const [k, s] of this.clients) {
      this.refill(s);
      if (s.inFlight === 0 && s.tokens >= this.burst) this.clients.delete(k);
    }
  }
}
