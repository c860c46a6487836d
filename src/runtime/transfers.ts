/**
 * Bytes that cross `session.run` in host memory: every host-located input is copied to the
 * execution provider's device, every host-located output is copied back. On a GPU provider that is
 * the host↔device traffic; on the CPU provider the same count says what the call would move on a
 * device that kept nothing resident (it is what the CUDA provider moves, since onnxruntime-node
 * returns its outputs to the host).
 */
import type * as ort from 'onnxruntime-node';

const ELEMENT_BYTES: Record<string, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  uint64: 8,
  float64: 8,
  int32: 4,
  uint32: 4,
  int16: 2,
  uint16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Bytes of a tensor's data. */
export function tensorBytes(t: ort.Tensor): number {
  return t.size * (ELEMENT_BYTES[t.type] ?? 0);
}

/** Host→device and device→host bytes of one or more runs. */
export interface TransferBytes {
  hostToDevice: number;
  deviceToHost: number;
}

/** One decoder step: its rows and the bytes of every run it took (row gathers before it included). */
export interface StepTransfer extends TransferBytes {
  rows: number;
  /** The first step of a generation (it also lays the encoder states out on the device). */
  first: boolean;
}

export interface TransferTotals {
  /** Vision, prompt embedding and encoder runs. */
  prefill: TransferBytes & { runs: number };
  /** Decoder steps with their token embedding and row gathers. */
  decoder: TransferBytes & { runs: number; steps: number };
}

const zero = (): TransferBytes & { runs: number } => ({ hostToDevice: 0, deviceToHost: 0, runs: 0 });

export class TransferLedger {
  readonly totals: TransferTotals = { prefill: zero(), decoder: { ...zero(), steps: 0 } };
  /** Each decoder step, when `recordSteps` (benchmarks and tests; a server only keeps totals). */
  readonly steps: StepTransfer[] = [];
  private pending: TransferBytes = { hostToDevice: 0, deviceToHost: 0 };

  constructor(private readonly recordSteps = false) {}

  /** Counts one run's host-located feeds and outputs under `phase`. */
  count(phase: 'prefill' | 'decoder', feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor>): void {
    let h2d = 0;
    let d2h = 0;
    for (const t of Object.values(feeds)) if (t.location === 'cpu') h2d += tensorBytes(t);
    for (const t of Object.values(outputs)) if (t.location === 'cpu') d2h += tensorBytes(t);
    const total = this.totals[phase];
    total.runs += 1;
    total.hostToDevice += h2d;
    total.deviceToHost += d2h;
    if (phase === 'decoder') {
      this.pending.hostToDevice += h2d;
      this.pending.deviceToHost += d2h;
    }
  }

  /** Closes a decoder step: the runs counted since the last one belong to it. */
  endStep(rows: number, first: boolean): void {
    this.totals.decoder.steps += 1;
    if (this.recordSteps) this.steps.push({ rows, first, ...this.pending });
    this.pending = { hostToDevice: 0, deviceToHost: 0 };
  }
}
