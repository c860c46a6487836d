/**
 * Retries for unary calls: only statuses that say "try again" (UNAVAILABLE, RESOURCE_EXHAUSTED),
 * exponential backoff with full jitter, and never past the call's deadline.
 */
import * as grpc from '@grpc/grpc-js';
import { CancelledError, Florence2Error } from './errors';

/** How a client retries. */
export interface RetryPolicy {
  /** Retries after the first attempt (0 = never retry). */
  maxRetries: number;
  /** Backoff cap for the first retry; doubles per retry. */
  baseMs: number;
  /** Upper bound of any single backoff. */
  maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 3, baseMs: 100, maxBackoffMs: 5_000 };

/**
 * Full jitter (uniform in [0, min(max, base·2^retry))): spreads clients that failed together so
 * they do not come back together.
 */
export function backoffMs(retry: number, policy: Pick<RetryPolicy, 'baseMs' | 'maxBackoffMs'>, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxBackoffMs, policy.baseMs * 2 ** retry);
  return Math.floor(random() * cap);
}

/** Whether a failed attempt may be sent again. */
export function isRetryable(err: Florence2Error): boolean {
  return (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.RESOURCE_EXHAUSTED) && err.retryable;
}

export interface RetryContext {
  policy: RetryPolicy;
  /** Absolute deadline (ms since the epoch) shared by every attempt; undefined = none. */
  deadline?: number;
  signal?: AbortSignal;
  /** For tests: the jitter source. */
  random?: () => number;
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable status, runs out of retries, or the
 * next backoff would end at or after the deadline. Rejects with a Florence2Error whose `attempts`
 * says how many attempts were made.
 */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, ctx: RetryContext): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (raw) {
      const err = Florence2Error.fromStatus(toStatus(raw), n);
      err.attempts = n;
      if (!isRetryable(err) || n > ctx.policy.maxRetries) throw err;
      const delay = backoffMs(n - 1, ctx.policy, ctx.random);
      // A retry that could only start after the deadline would fail with DEADLINE_EXCEEDED and hide
      // the real cause; report the last status instead.
      if (ctx.deadline !== undefined && Date.now() + delay >= ctx.deadline) throw err;
      await sleep(delay, ctx.signal, n);
    }
  }
}

/** Anything thrown by an attempt → something fromStatus understands (non-gRPC errors become UNKNOWN). */
function toStatus(raw: unknown): Florence2Error | { code: number; details: string; metadata?: grpc.Metadata } {
  if (raw instanceof Florence2Error) return raw;
  const e = raw as Partial<grpc.ServiceError> | undefined;
  if (e && typeof e.code === 'number' && typeof e.details === 'string') return e as grpc.ServiceError;
  return { code: grpc.status.UNKNOWN, details: raw instanceof Error ? raw.message : String(raw) };
}

/** Waits `ms`, or rejects with CancelledError as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal | undefined, attempts: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError('cancelled by the caller', { attempts }));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError('cancelled by the caller', { attempts }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
