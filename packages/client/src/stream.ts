/**
 * The bidirectional Stream as an async iterable: requests are pulled from the caller's iterable
 * only while fewer than `maxInFlight` are unanswered or unconsumed (the server refuses work beyond
 * its queue bound, and streams are never retried), and each answer is matched to its id.
 */
import * as grpc from '@grpc/grpc-js';
import type { RunRequest } from './generated/florence2/v1/RunRequest';
import type { StreamRequest } from './generated/florence2/v1/StreamRequest';
import type { StreamResponse__Output } from './generated/florence2/v1/StreamResponse';
import { CancelledError, Florence2Error, InvalidArgumentError } from './errors';
import { type Extras, fromRunResponse, requestExtras } from './convert';
import type { CallOptions, TaskRequest, TaskResult } from './types';

/** One request of a stream: a caller-chosen id (non-empty, unique among unanswered ones) and the request. */
export interface StreamItem {
  id: string;
  request: TaskRequest;
}

/** One answer of a stream: the result for an id, or its error; `ok`, `'result' in` and `'error' in` all narrow it. */
export type StreamOutcome = { ok: true; id: string; result: TaskResult } | { ok: false; id: string; error: Florence2Error };

/** Options of {@link Florence2Client.stream}. */
export interface StreamOptions extends Omit<CallOptions, 'maxRetries'> {
  /**
   * Most requests sent but not yet consumed by the caller (default 8). Keep it at or below the
   * server's queue bound (max-queue-per-device × devices) or extra requests get RESOURCE_EXHAUSTED.
   */
  maxInFlight?: number;
}

export type DuplexCall = grpc.ClientDuplexStream<StreamRequest, StreamResponse__Output>;

export const DEFAULT_MAX_IN_FLIGHT = 8;

/**
 * Runs a stream call. Every request sent gets exactly one outcome; if the call itself fails
 * (deadline, cancel, server gone), the unanswered requests get that error as their outcome and the
 * iteration then throws it. Breaking out of the loop cancels the call.
 */
export async function* runStream(
  open: (metadata: grpc.Metadata, options: grpc.CallOptions) => DuplexCall,
  requests: AsyncIterable<StreamItem> | Iterable<StreamItem>,
  options: StreamOptions,
  metadata: grpc.Metadata,
  toProto: (request: TaskRequest) => Promise<RunRequest>,
): AsyncGenerator<StreamOutcome, void, undefined> {
  const maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
  const signal = options.signal;
  if (signal?.aborted) throw new CancelledError('cancelled by the caller');

  const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  const call = open(metadata, callOptions);

  const ready: StreamOutcome[] = [];
  // Unanswered ids, with what each request asked for (so its answer leaves out what it did not).
  const inFlight = new Map<string, Extras>();
  let statusReceived = false;
  let readEnded = false;
  let failure: Florence2Error | null = null;
  let inputError: unknown = null;
  let stopped = false;

  // Two parties wait: the consumer (for outcomes) and the pump (for a free slot / drain).
  let wakeConsumer: (() => void) | null = null;
  let wakePump: (() => void) | null = null;
  const notifyConsumer = () => {
    const w = wakeConsumer;
    wakeConsumer = null;
    w?.();
  };
  const notifyPump = () => {
    const w = wakePump;
    wakePump = null;
    w?.();
  };
  const push = (o: StreamOutcome) => {
    ready.push(o);
    notifyConsumer();
  };
  // The status can be emitted before buffered messages are delivered; finish only when both are in.
  const finished = () => statusReceived && (readEnded || failure !== null);

  call.on('data', (msg: StreamResponse__Output) => {
    const id = msg.request_id;
    const extras = inFlight.get(id) ?? { rawText: false };
    inFlight.delete(id);
    if (msg.outcome === 'result' && msg.result) {
      try {
        push({ ok: true, id, result: fromRunResponse(msg.result, extras) });
      } catch (err) {
        push({ ok: false, id, error: Florence2Error.fromStatus({ code: grpc.status.UNKNOWN, details: (err as Error).message }) });
      }
    } else {
      const e = msg.error;
      push({
        ok: false,
        id,
        error: Florence2Error.fromStatus({
          code: e?.code ?? grpc.status.UNKNOWN,
          message: e?.message ?? 'no outcome in the stream response',
        }),
      });
    }
  });
  call.on('end', () => {
    readEnded = true;
    notifyConsumer();
  });
  call.on('error', (err: grpc.ServiceError) => {
    failure = Florence2Error.fromStatus(err);
    notifyConsumer();
    notifyPump();
  });
  call.on('status', () => {
    statusReceived = true;
    notifyConsumer();
    notifyPump();
  });
  call.on('drain', notifyPump);

  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });

  const pump = async () => {
    const iterator = Symbol.asyncIterator in requests ? requests[Symbol.asyncIterator]() : requests[Symbol.iterator]();
    const stop = () => stopped || statusReceived || failure !== null;
    try {
      for (;;) {
        // A slot is a request that is sent and unanswered, or answered and not yet consumed.
        while (!stop() && inFlight.size + ready.length >= maxInFlight) await new Promise<void>((r) => (wakePump = r));
        if (stop()) return;
        const next = await iterator.next();
        if (next.done) break;
        const { id, request } = next.value ?? ({} as Partial<StreamItem>);
        if (typeof id !== 'string' || id === '') {
          push({
            ok: false,
            id: String(id ?? ''),
            error: new InvalidArgumentError('`request_id` is required on every stream request (a non-empty string)'),
          });
          continue;
        }
        if (inFlight.has(id)) {
          push({
            ok: false,
            id,
            error: new InvalidArgumentError(`\`request_id\` ${JSON.stringify(id)} is already in flight on this stream`),
          });
          continue;
        }
        let run: RunRequest;
        try {
          run = await toProto(request);
        } catch (err) {
          // One unreadable file or bad input must not end the whole stream.
          const family = (request as Partial<TaskRequest> | undefined)?.family;
          // A system error (ENOENT, EACCES) came from reading the image file; anything else is a bad input.
          const fromFile = typeof (err as NodeJS.ErrnoException).code === 'string';
          const field = family && fromFile ? `request.${family}.image.data` : 'request';
          push({ ok: false, id, error: new InvalidArgumentError(`\`${field}\`: ${(err as Error).message}`, { cause: err }) });
          continue;
        }
        if (stop()) return;
        inFlight.set(id, requestExtras(request));
        if (!call.write({ request_id: id, request: run })) {
          while (!stop() && call.writableNeedDrain) await new Promise<void>((r) => (wakePump = r));
        }
      }
      if (!stop()) call.end();
    } finally {
      if (stopped) await iterator.return?.();
    }
  };
  pump().catch((err) => {
    inputError = err;
    call.cancel();
    notifyConsumer();
  });

  try {
    for (;;) {
      while (ready.length > 0) {
        const outcome = ready.shift()!;
        notifyPump();
        yield outcome;
      }
      if (finished()) break;
      await new Promise<void>((r) => (wakeConsumer = r));
    }
    const error: Florence2Error | null = failure;
    if (error !== null || inputError !== null) {
      const reported = error ?? new CancelledError('the request iterable failed', { cause: inputError });
      for (const id of [...inFlight.keys()]) {
        inFlight.delete(id);
        yield { ok: false, id, error: reported };
      }
      // The iterable's own failure is rethrown as it came (it may not be an Error).
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw inputError ?? reported;
    }
  } finally {
    stopped = true;
    signal?.removeEventListener('abort', onAbort);
    if (!statusReceived) call.cancel();
    notifyPump();
  }
}
