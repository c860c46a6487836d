/**
 * Which waiting requests of a device become the next worker batch, and when. Pure policy over the
 * device's FIFO; the scheduler owns the queue, the timers and the dispatch.
 *
 * The onnx-community decoder has no decoder attention mask and no position input: positions come from
 * the cache length, one value for all rows. So every row of a decoder step must be at the same step,
 * and a request cannot join a batch that is already decoding. Batches are therefore cohorts: gathered
 * here, encoded together, decoded in lock-step in the worker, shrinking as rows finish.
 */

/** Batching limits of one device. */
export interface BatchLimits {
  /** Decoder rows per batch (a request is prompts × beams rows); a single larger request still runs alone. */
  maxBatchRows: number;
  /** How long the oldest waiting request may wait for others while a worker is free; 0 sends what is waiting at once. */
  maxQueueDelayMs: number;
}

/** What the batcher needs of a waiting request. */
export interface Batchable {
  /** Decoder rows the request needs. */
  readonly rows: number;
  /** Requests go together only when their keys are equal (the settings the decoder loop shares). */
  readonly key: string;
  /** When it entered the queue (performance.now()). */
  readonly enqueued: number;
  /** Who sent it, for fairness between clients; requests without one count as one client. */
  readonly client?: string;
}

/**
 * The queue in the order batches take it: round-robin between clients, each client's requests in
 * arrival order. A request's place is (its rank among its client's waiting requests, its arrival), so
 * a client with 40 waiting requests gets one turn per round like a client with one, and the oldest
 * request overall stays first.
 */
export function fairOrder<T extends Batchable>(queue: readonly T[]): T[] {
  const seen = new Map<string | undefined, number>();
  const ranked = queue.map((e) => {
    const rank = seen.get(e.client) ?? 0;
    seen.set(e.client, rank + 1);
    return { e, rank };
  });
  if (seen.size <= 1) return [...queue];
  ranked.sort((a, b) => a.rank - b.rank || a.e.enqueued - b.e.enqueued);
  return ranked.map((r) => r.e);
}

/**
 * The next batch from `queue` (arrival order): the oldest request, then every later one with the same
 * key while the rows fit. Requests of another key keep their place, so the oldest is never passed over.
 */
export function takeBatch<T extends Batchable>(queue: readonly T[], limits: BatchLimits): T[] {
  if (queue.length === 0) return [];
  const head = queue[0];
  const batch = [head];
  let rows = head.rows;
  for (let i = 1; i < queue.length && rows < limits.maxBatchRows; i++) {
    const e = queue[i];
    if (e.key !== head.key || rows + e.rows > limits.maxBatchRows) continue;
    batch.push(e);
    rows += e.rows;
  }
  return batch;
}

/**
 * When the batch at the head of `queue` should go: now (returns 0) when it is full or the oldest
 * request has waited the delay, else the milliseconds left to wait.
 */
export function flushIn<T extends Batchable>(queue: readonly T[], limits: BatchLimits, now: number): number {
  if (queue.length === 0) return Infinity;
  const batch = takeBatch(queue, limits);
  const rows = batch.reduce((s, e) => s + e.rows, 0);
  if (rows >= limits.maxBatchRows) return 0;
  // A compatible request that did not fit means the batch is as full as it can get.
  if (batch.length < queue.filter((e) => e.key === batch[0].key).length) return 0;
  return Math.max(0, queue[0].enqueued + limits.maxQueueDelayMs - now);
}
