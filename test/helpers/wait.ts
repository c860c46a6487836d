/**
 * Waiting for an observable state instead of sleeping: tests poll what they need (a log line, a
 * metric, a counter of a fake) until it holds, so they pass however fast or loaded the machine is.
 * The timeout only bounds a wait that would otherwise hang until mocha's own timeout; it is not a
 * speed expectation, so it is generous.
 */

export interface WaitOptions {
  /** What is awaited, for the timeout message ("the request to be in flight"). */
  what: string;
  /** Give up after this long; default 30 s. */
  timeoutMs?: number;
  /** Pause between probes; default 10 ms. */
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns a truthy value and resolves with that value. A probe that throws
 * fails the wait at once (a broken probe is not a state to wait out). On timeout rejects with an
 * error naming `what` and the last value seen.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, options: WaitOptions): Promise<NonNullable<T>> {
  const { what, timeoutMs = 30_000, intervalMs = 10 } = options;
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() - started >= timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last probe gave ${JSON.stringify(value)})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
