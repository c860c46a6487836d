/**
 * The cooperative cancel flags shared with the workers, and their one owner. Each request of a
 * running batch holds one slot (an Int32 in a SharedArrayBuffer); the main thread writes why it must stop
 * (CANCEL_BY_CLIENT, CANCEL_BY_DEADLINE or CANCEL_BY_SHUTDOWN, first writer wins) and the worker reads
 * it between decoder steps. A slot is released only after its task settled, when its worker no longer
 * reads it.
 */
import { type CancelReason, CANCEL_NONE } from '../common/protocol';

export class CancelSlots {
  /** The buffer every pool's WorkerInit carries. */
  readonly buffer: SharedArrayBuffer;
  private readonly flags: Int32Array;
  private readonly free: number[];

  /**
   * The sizing rule: one slot per request that can run at once. A batch holds at most
   * `maxBatchRows` requests (each needs at least one row; a single larger request runs alone), and
   * its slots are released before the next batch of its device starts, so
   * devices × batches in flight × maxBatchRows is exactly enough.
   */
  static forDevices(devices: number, maxInFlightPerDevice: number, maxBatchRows = 1): CancelSlots {
    return new CancelSlots(devices * maxInFlightPerDevice * maxBatchRows);
  }

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`cancel slots must be an integer ≥ 1, got ${slots}`);
    this.buffer = new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT);
    this.flags = new Int32Array(this.buffer);
    // Lowest slot first, for readable logs and tests.
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  get size(): number {
    return this.flags.length;
  }

  /** A cleared slot for a task about to run, or undefined when all are held. */
  claim(): number | undefined {
    const slot = this.free.pop();
    if (slot !== undefined) Atomics.store(this.flags, slot, CANCEL_NONE);
    return slot;
  }

  /** Returns a slot once its task settled. */
  release(slot: number): void {
    Atomics.store(this.flags, slot, CANCEL_NONE);
    this.free.push(slot);
  }

  /** Asks the task in `slot` to stop; the first reason written wins. */
  stop(slot: number, reason: CancelReason): void {
    Atomics.compareExchange(this.flags, slot, CANCEL_NONE, reason);
  }

  /** The reason written to a slot (CANCEL_NONE while it runs undisturbed). */
  read(slot: number): number {
    return Atomics.load(this.flags, slot);
  }
}
