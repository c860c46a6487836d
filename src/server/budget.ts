/**
 * The server-wide budget of request bytes held in memory: decoded request messages from the moment
 * they arrive until their call ends, and reservations for compressed messages still being
 * decompressed. grpc-js decompresses a message whole (up to the message size limit) before any
 * handler sees it, so a compressed message reserves that limit before its read starts; a read that
 * cannot get its reservation waits, its stream paused (HTTP/2 flow control holds the sender). So
 * resident memory stays within model + workers + this budget.
 */

/** Bytes held against the budget; released once (release() again is a no-op). */
export interface Ticket {
  readonly bytes: number;
  /** Holds `bytes` instead (shrinking always succeeds; growing may exceed the budget, so callers only shrink). */
  resize(bytes: number): void;
  release(): void;
}

interface Waiter {
  bytes: number;
  owner: string;
  grant(t: Ticket): void;
}

export interface BudgetStats {
  usedBytes: number;
  totalBytes: number;
  waiting: number;
}

export class ByteBudget {
  private used = 0;
  private readonly byOwner = new Map<string, number>();
  private readonly waiters: Waiter[] = [];

  /**
   * @param total bytes in all
   * @param maxShare the most one owner (a client) may hold of it, so that one client's slow or
   *   compressed calls cannot take all of it
   */
  constructor(
    readonly total: number,
    readonly maxShare = total,
  ) {
    if (!(total > 0)) throw new RangeError(`the request memory budget must be > 0 bytes, got ${total}`);
  }

  stats(): BudgetStats {
    return { usedBytes: this.used, totalBytes: this.total, waiting: this.waiters.length };
  }

  /** Takes `bytes` now if they fit, else returns null. */
  tryTake(bytes: number, owner: string): Ticket | null {
    if (!this.fits(bytes, owner)) return null;
    return this.grant(bytes, owner);
  }

  /**
   * Takes `bytes` when they fit, waiting in arrival order (an owner over its share is passed over,
   * not the others). `cancel()` withdraws a waiting request; a granted ticket must be released.
   */
  take(bytes: number, owner: string, onGrant: (t: Ticket) => void): { cancel(): void } {
    if (bytes > this.total) throw new RangeError(`${bytes} bytes can never fit a budget of ${this.total}`);
    const w: Waiter = { bytes, owner, grant: onGrant };
    this.waiters.push(w);
    // Granted at once when it fits and nobody ahead waits for the budget itself (only for their share).
    this.wake();
    return {
      cancel: () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        this.wake();
      },
    };
  }

  private fits(bytes: number, owner: string): boolean {
    return this.used + bytes <= this.total && (this.byOwner.get(owner) ?? 0) + bytes <= Math.max(this.maxShare, bytes);
  }

  private grant(bytes: number, owner: string): Ticket {
    let held = bytes;
    let released = false;
    const add = (delta: number) => {
      this.used += delta;
      const mine = (this.byOwner.get(owner) ?? 0) + delta;
      if (mine <= 0) this.byOwner.delete(owner);
      else this.byOwner.set(owner, mine);
    };
    add(held);
    const ticket: Ticket = {
      get bytes() {
        return released ? 0 : held;
      },
      resize: (next: number) => {
        if (released) return;
        add(next - held);
        held = next;
        this.wake();
      },
      release: () => {
        if (released) return;
        released = true;
        add(-held);
        this.wake();
      },
    };
    return ticket;
  }

  private wake(): void {
    for (let i = 0; i < this.waiters.length;) {
      const w = this.waiters[i];
      if (this.fits(w.bytes, w.owner)) {
        this.waiters.splice(i, 1);
        w.grant(this.grant(w.bytes, w.owner));
      } else if (this.used + w.bytes > this.total) {
        // Strict arrival order for the budget itself: a large request is not overtaken for ever by small ones.
        return;
      } else {
        // Only this owner is over its share: the others go on.
        i++;
      }
    }
  }
}
