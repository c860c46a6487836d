/**
 * The Florence2 service: proto ↔ domain for every RPC. Policy (admission, deadlines, devices) lives
 * in the scheduler; this file validates, submits, encodes, records metrics and maps errors.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import {
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  ServiceError,
  UnavailableError,
  WorkerInputError,
} from '../common/errors';
import { type Logger, withLogContext } from '../common/logger';
import {
  type RequestTrace,
  endRequestTrace,
  inSpan,
  recordInference,
  recordQueue,
  startRequestTrace,
  withRequestTrace,
} from '../common/tracing';
import type { Metrics } from '../metrics/registry';
import type { TaskFamily } from 'florence2-client/catalogue';
import type { Florence2Handlers } from 'florence2-client/generated/florence2/v1/Florence2';
import type { RunResponse } from 'florence2-client/generated/florence2/v1/RunResponse';
import type { StreamRequest__Output } from 'florence2-client/generated/florence2/v1/StreamRequest';
import type { StreamResponse } from 'florence2-client/generated/florence2/v1/StreamResponse';
import type { ModelInfo } from 'florence2-client/generated/florence2/v1/ModelInfo';
import type { Scheduler } from './scheduler';
import { encodeResponse } from './encode';
import type { ClientLimits } from './client-limits';
import { callContext } from './guard';
import { type RejectedMessage, isRejected } from './wire-guard';
import {
  type RequestLimits,
  checkRequestTokens,
  requestField,
  requestedTask,
  type ValidRequest,
  validateCaption,
  validateDetect,
  validateOcr,
  validateOpenVocabulary,
  validatePhraseGrounding,
  validateRegion,
  validateRun,
  validateSegment,
} from './validate';

export interface ServiceDeps {
  scheduler: Scheduler;
  limits: RequestLimits;
  metrics: Metrics;
  logger: Logger;
  /** True while the server accepts work (after warm-up, before draining). */
  isServing: () => boolean;
  modelInfo: () => ModelInfo;
  /** Test-only: honour the `x-florence2-test-crash` metadata key (the worker exits mid-request). */
  testHooks: boolean;
  /** Beams of a request that does not ask (the model's default). */
  defaultNumBeams: number;
  /** The longest a request may take when its client sets no deadline or a later one; 0 = no bound. */
  maxRequestMs: number;
  /** Per-client bounds; unary calls pass them in the guard, Stream requests here, one by one. */
  clientLimits: ClientLimits;
  /** Aborted when the server starts shutting down: open Streams end UNAVAILABLE once their requests are answered. */
  shutdownSignal?: AbortSignal;
}

/** Status code name for metrics labels (bounded: the codes grpc defines). */
const codeName = (code: grpc.status) => grpc.status[code] ?? 'UNKNOWN';

/** Any thrown value → the ServiceError sent to the client; the only place INTERNAL is made. */
function toServiceError(err: unknown, requestId: string, logger: Logger, v: ValidRequest | null, prefix: string): ServiceError {
  if (err instanceof WorkerInputError && v) {
    const field = `${prefix}${requestField(v.family, err.libraryField)}`;
    return new InvalidArgumentError(field, err.message.split(`\`${err.libraryField}\``).join(`\`${field}\``));
  }
  if (err instanceof InternalError) logger.error('internal error', { requestId, err, cause: (err as Error & { cause?: unknown }).cause });
  if (err instanceof ServiceError) return err;
  logger.error('unexpected error', { requestId, err });
  return new InternalError(`internal error (request ${requestId}); the server log has the cause`);
}

/** What the service uses of a call, from either transport (gRPC here, HTTP/JSON in http-api.ts). */
export interface CallInfo {
  metadata: grpc.Metadata;
  /** The peer, for logs. */
  peer: string;
  /** The method's path, `/florence2.v1.Florence2/<Rpc>`, for logs. */
  path: string;
  /** The client's deadline (epoch ms), if it set one. */
  clientDeadline: number | undefined;
}

/** A unary call as a transport hands it over. */
export interface UnaryCall extends CallInfo {
  /** The decoded request, or what the wire scan refused. */
  request: unknown;
  /** Aborted when the client gives up on the call. */
  signal: AbortSignal;
  /** When the call arrived (Date.now()). */
  arrivedEpoch: number;
}

/** One unary RPC, transport-neutral: the response message, or a thrown ServiceError. */
export type UnaryMethod = (call: UnaryCall) => Promise<object>;

/** The unary RPCs by name (`Detect`, ..., `GetModelInfo`): every RPC of the service but Stream. */
export const UNARY_RPCS = [
  'Caption',
  'Detect',
  'DetectOpenVocabulary',
  'GroundPhrases',
  'Segment',
  'Ocr',
  'DescribeRegion',
  'Run',
  'GetModelInfo',
] as const;
export type UnaryRpc = (typeof UNARY_RPCS)[number];

export interface Florence2Service {
  /** For grpc-js's `addService`. */
  handlers: Florence2Handlers;
  /** The same unary RPCs for other transports. */
  unary: Record<UnaryRpc, UnaryMethod>;
}

/** The client's deadline (epoch ms) of a grpc-js call, if it set one. */
function clientDeadline(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * A client whose deadline passes cancels the call itself (RST_STREAM), measured on its own clock from
 * when it sent the request; the server's copy of the deadline starts when the headers arrived, later
 * by the transit time. So a cancel that arrives shortly before the server's deadline is that deadline,
 * not a cancel: within this margin (at most half the time the request had) it is left to the
 * scheduler's deadline timer, which answers and counts DEADLINE_EXCEEDED.
 */
const DEADLINE_CANCEL_MARGIN_MS = 250;

function onCallCancelled(deadline: number | undefined, arrivedEpoch: number, ac: AbortController): void {
  if (deadline !== undefined) {
    const margin = Math.min(DEADLINE_CANCEL_MARGIN_MS, Math.max(2, (deadline - arrivedEpoch) / 2));
    if (Date.now() >= deadline - margin) return;
  }
  ac.abort();
}

/** How often a peer that keeps sending unparsable messages is logged: once per window, with a count. */
const REJECTED_LOG_WINDOW_MS = 10_000;

export function createService(deps: ServiceDeps): Florence2Service {
  const { scheduler, limits, metrics, logger } = deps;

  /** The deadline a request runs under: the client's, bounded by --max-request-ms from its arrival. */
  const deadlineFor = (call: CallInfo, arrivedEpoch: number): number | undefined => {
    const own = call.clientDeadline;
    if (deps.maxRequestMs <= 0) return own;
    const bound = arrivedEpoch + deps.maxRequestMs;
    return own === undefined ? bound : Math.min(own, bound);
  };

  const rejectedLog = new Map<string, { until: number; suppressed: number }>();
  /** A message refused on the wire: counted, logged (once per peer per window), turned into its status. */
  function rejectedError(msg: RejectedMessage, call: CallInfo): ServiceError {
    if (msg.reason === 'budget') return new ResourceExhaustedError(msg.message, { retryAfterMs: 200 });
    metrics.recordRejectedMessage(msg.reason);
    const code = msg.reason === 'size' ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT';
    metrics.recordRequest('unknown', code, 0);
    const { peer, path } = call;
    const now = Date.now();
    const seen = rejectedLog.get(peer);
    if (seen && now < seen.until) seen.suppressed += 1;
    else {
      if (rejectedLog.size > 1000) rejectedLog.clear();
      rejectedLog.set(peer, { until: now + REJECTED_LOG_WINDOW_MS, suppressed: 0 });
      logger.warn('request message refused on the wire', {
        peer,
        path,
        reason: msg.reason,
        field: msg.field,
        message: msg.message,
        ...(seen ? { suppressedSinceLast: seen.suppressed } : {}),
      });
    }
    // Retrying a message over the size limit cannot help: no retry information.
    if (msg.reason === 'size') return new ResourceExhaustedError(msg.message);
    // The scan names fields by their full path from the message root, Stream requests included.
    return new InvalidArgumentError(msg.field, msg.message);
  }

  type ExecuteContext = {
    call: CallInfo;
    signal: AbortSignal;
    requestId: string;
    arrived: number;
    deadline: number | undefined;
    prefix: string;
    /** The task asked for, counted when validation fails. */
    task: string | undefined;
  };

  /**
   * One request in its trace (the server span, child of the caller's `traceparent`) and its log
   * context (requestId and traceId on every line logged while it runs, the worker's too).
   */
  function execute(validate: () => Promise<ValidRequest>, ctx: ExecuteContext): Promise<RunResponse> {
    // The path is "/florence2.v1.Florence2/Detect"; the span is named without the slash.
    const t = startRequestTrace(ctx.call.path.slice(1), ctx.call.metadata, { 'florence2.request_id': ctx.requestId });
    const fields = t.traceId ? { requestId: ctx.requestId, traceId: t.traceId } : { requestId: ctx.requestId };
    return withLogContext(fields, () => withRequestTrace(t, () => run(validate, ctx, t)));
  }

  /** Validate → submit → encode, with metrics, logs and stage spans; throws a ServiceError on failure. */
  async function run(validate: () => Promise<ValidRequest>, ctx: ExecuteContext, t: RequestTrace): Promise<RunResponse> {
    let v: ValidRequest | null = null;
    try {
      if (!deps.isServing()) throw new UnavailableError('the server is not serving (starting up or shutting down); retry');
      v = await inSpan('validate', async () => {
        const valid = await validate();
        checkRequestTokens(valid, limits, deps.defaultNumBeams, ctx.prefix);
        return valid;
      });
      const crash = deps.testHooks && ctx.call.metadata.get('x-florence2-test-crash').length > 0;
      const out = await scheduler.submit(
        { prompts: v.requests, numBeams: v.numBeams, maxNewTokens: v.maxNewTokens, ...(crash ? { crash: true } : {}) },
        { deadline: ctx.deadline, signal: ctx.signal, requestId: ctx.requestId, client: callContext(ctx.call.metadata)?.client },
      );
      const batch = { id: out.batchId, ...out.batch, steps: out.result.steps, device: out.device };
      recordQueue(t, { from: out.dispatchedAt - out.queueMs, to: out.dispatchedAt, batchWaitMs: out.batchWaitMs }, batch);
      recordInference(t, out.result.startedAt, out.result.timings, batch);
      const response = encodeResponse(v, {
        items: out.result.items,
        timings: out.result.timings,
        device: out.device,
        queueMs: out.queueMs,
        batchWaitMs: out.batchWaitMs,
        batch: { ...out.batch, steps: out.result.steps },
        requestId: ctx.requestId,
        arrived: ctx.arrived,
        now: performance.now(),
      });
      const seconds = (performance.now() - ctx.arrived) / 1000;
      metrics.recordRequest(v.task, 'OK', seconds);
      metrics.recordQueueWait(out.device, out.queueMs / 1000);
      metrics.recordBatchWait(out.device, out.batchWaitMs / 1000);
      // The shared stages are recorded once per batch (main.ts); these are the request's own.
      metrics.recordStages({ decoder: out.result.timings.decoder, postprocess: out.result.timings.postprocess });
      metrics.recordTokens(
        v.task,
        out.result.items.reduce((s, i) => s + i.promptTokens, 0),
        out.result.items.reduce((s, i) => s + i.generatedTokens, 0),
      );
      logger.debug('request done', { requestId: ctx.requestId, task: v.task, device: out.device, ms: Math.round(seconds * 1000) });
      endRequestTrace(t, 'OK', { 'florence2.task': v.task, 'florence2.device': out.device });
      return response;
    } catch (err) {
      const e = toServiceError(err, ctx.requestId, logger, v, ctx.prefix);
      const task = v?.task ?? ctx.task ?? 'unknown';
      metrics.recordRequest(task, codeName(e.code), (performance.now() - ctx.arrived) / 1000);
      logger.info('request failed', { requestId: ctx.requestId, task, code: codeName(e.code), message: e.message });
      endRequestTrace(t, codeName(e.code), { 'florence2.task': task }, e.message);
      throw e;
    }
  }

  function unary<Req>(
    family: TaskFamily | 'run',
    validate: (req: Req, l: RequestLimits) => Promise<ValidRequest>,
    pick: (r: RunResponse) => object,
  ): UnaryMethod {
    return (call) => {
      const request = call.request;
      if (isRejected(request)) return Promise.reject(rejectedError(request, call));
      return execute(() => validate(request as Req, limits), {
        call,
        signal: call.signal,
        requestId: randomUUID(),
        arrived: performance.now(),
        deadline: deadlineFor(call, call.arrivedEpoch),
        prefix: '',
        task: requestedTask(family, request as Record<string, unknown>),
      }).then(pick);
    };
  }

  const methods: Record<UnaryRpc, UnaryMethod> = {
    Caption: unary('caption', validateCaption, (r) => r.caption!),
    Detect: unary('detect', validateDetect, (r) => r.detect!),
    DetectOpenVocabulary: unary('open_vocabulary', validateOpenVocabulary, (r) => r.open_vocabulary!),
    GroundPhrases: unary('phrase_grounding', validatePhraseGrounding, (r) => r.phrase_grounding!),
    Segment: unary('segment', validateSegment, (r) => r.segment!),
    Ocr: unary('ocr', validateOcr, (r) => r.ocr!),
    DescribeRegion: unary('region', validateRegion, (r) => r.region!),
    Run: unary('run', validateRun, (r) => r),
    GetModelInfo: (call) =>
      isRejected(call.request) ? Promise.reject(rejectedError(call.request, call)) : Promise.resolve(deps.modelInfo()),
  };

  /** A unary method as a grpc-js handler: the call's cancel aborts it (see onCallCancelled). */
  const grpcUnary =
    (method: UnaryMethod): grpc.handleUnaryCall<unknown, object> =>
    (call, callback) => {
      const ac = new AbortController();
      const arrivedEpoch = Date.now();
      const deadline = clientDeadline(call);
      call.on('cancelled', () => onCallCancelled(deadline, arrivedEpoch, ac));
      method({
        request: call.request,
        metadata: call.metadata,
        peer: call.getPeer(),
        path: call.getPath(),
        clientDeadline: deadline,
        signal: ac.signal,
        arrivedEpoch,
      }).then(
        (r) => callback(null, r),
        (e: ServiceError) => callback(e),
      );
    };

  const handlers: Florence2Handlers = {
    Caption: grpcUnary(methods.Caption),
    Detect: grpcUnary(methods.Detect),
    DetectOpenVocabulary: grpcUnary(methods.DetectOpenVocabulary),
    GroundPhrases: grpcUnary(methods.GroundPhrases),
    Segment: grpcUnary(methods.Segment),
    Ocr: grpcUnary(methods.Ocr),
    DescribeRegion: grpcUnary(methods.DescribeRegion),
    Run: grpcUnary(methods.Run),
    GetModelInfo: grpcUnary(methods.GetModelInfo),

    Stream(call: grpc.ServerDuplexStream<StreamRequest__Output | RejectedMessage, StreamResponse>) {
      const inFlight = new Map<string, AbortController>();
      const guard = callContext(call.metadata);
      const streamInfo: CallInfo = {
        metadata: call.metadata,
        peer: call.getPeer(),
        path: call.getPath(),
        clientDeadline: clientDeadline(call),
      };
      let inputEnded = false;
      let closed = false;
      let stopping = false;
      const finishIfDone = () => {
        if (closed || inFlight.size > 0) return;
        if (stopping) {
          // Shutdown: the requests are answered; the Stream ends with a status its client retries.
          closed = true;
          deps.shutdownSignal?.removeEventListener('abort', onShutdown);
          call.emit('error', new UnavailableError('the server is shutting down; open a new stream on another instance'));
        } else if (inputEnded) {
          closed = true;
          deps.shutdownSignal?.removeEventListener('abort', onShutdown);
          call.end();
        }
      };
      const onShutdown = () => {
        stopping = true;
        finishIfDone();
      };
      deps.shutdownSignal?.addEventListener('abort', onShutdown, { once: true });
      // Backpressure: while the client does not read our responses, stop reading its requests.
      const send = (msg: StreamResponse) => {
        if (closed) return;
        if (!call.write(msg)) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      };
      const fail = (id: string, e: ServiceError) => send({ request_id: id, error: { code: e.code, message: e.message } });
      call.on('data', (msg: StreamRequest__Output | RejectedMessage) => {
        if (isRejected(msg)) return fail(msg.requestId, rejectedError(msg, streamInfo));
        const id = msg.request_id;
        const refuse = (e: ServiceError) => {
          guard?.releaseMessage(msg);
          fail(id, e);
        };
        if (!id) return refuse(new InvalidArgumentError('request_id', '`request_id` is required on every stream request'));
        if (inFlight.has(id))
          return refuse(new InvalidArgumentError('request_id', `\`request_id\` ${JSON.stringify(id)} is already in flight on this stream`));
        let releaseClient: () => void;
        try {
          releaseClient = guard ? deps.clientLimits.admit(guard.client) : () => {};
        } catch (err) {
          if (err instanceof ServiceError) metrics.recordRefused('client_limit');
          return refuse(err as ServiceError);
        }
        const ac = new AbortController();
        inFlight.set(id, ac);
        const requestId = `${randomUUID()}:${id}`;
        const arrivedEpoch = Date.now();
        execute(
          () =>
            msg.request
              ? validateRun(msg.request, limits, 'request.')
              : Promise.reject(new InvalidArgumentError('request', '`request` is required')),
          {
            call: streamInfo,
            signal: ac.signal,
            requestId,
            arrived: performance.now(),
            deadline: deadlineFor(streamInfo, arrivedEpoch),
            prefix: 'request.',
            task: msg.request ? requestedTask('run', msg.request as unknown as Record<string, unknown>) : undefined,
          },
        )
          .then(
            (result) => send({ request_id: id, result }),
            (e: ServiceError) => fail(id, e),
          )
          .finally(() => {
            releaseClient();
            guard?.releaseMessage(msg);
            inFlight.delete(id);
            finishIfDone();
          });
      });
      call.on('end', () => {
        inputEnded = true;
        finishIfDone();
      });
      const streamArrived = Date.now();
      call.on('cancelled', () => {
        closed = true;
        deps.shutdownSignal?.removeEventListener('abort', onShutdown);
        for (const ac of inFlight.values()) onCallCancelled(streamInfo.clientDeadline, streamArrived, ac);
      });
      call.on('error', () => {
        closed = true;
        deps.shutdownSignal?.removeEventListener('abort', onShutdown);
        for (const ac of inFlight.values()) ac.abort();
      });
    },
  };
  return { handlers, unary: methods };
}
