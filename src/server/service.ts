/**
 * The Florence2 service: proto ↔ domain for every RPC. Policy (admission, deadlines, devices) lives
 * in the scheduler; this file validates, submits, encodes, records metrics and maps errors.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { InternalError, InvalidArgumentError, ServiceError, UnavailableError, WorkerInputError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { Metrics } from '../metrics/registry';
import type { Florence2Handlers } from '../generated/florence2/v1/Florence2';
import type { RunResponse } from '../generated/florence2/v1/RunResponse';
import type { StreamRequest__Output } from '../generated/florence2/v1/StreamRequest';
import type { StreamResponse } from '../generated/florence2/v1/StreamResponse';
import type { ModelInfo } from '../generated/florence2/v1/ModelInfo';
import type { Scheduler } from './scheduler';
import { encodeResponse } from './encode';
import {
  type RequestLimits,
  requestField,
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

/** What handlers use of a call, unary or streaming. */
type CallInfo = { getDeadline(): grpc.Deadline; metadata: grpc.Metadata };

function deadlineOf(call: CallInfo): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * grpc-js reports an expired deadline as a cancelled call too. Only a client's cancel aborts here;
 * the scheduler's own deadline timer stops the work and answers DEADLINE_EXCEEDED.
 */
function abortUnlessExpired(call: CallInfo, ac: AbortController): void {
  const deadline = deadlineOf(call);
  if (deadline !== undefined && Date.now() >= deadline - 2) return;
  ac.abort();
}

export function createService(deps: ServiceDeps): Florence2Handlers {
  const { scheduler, limits, metrics, logger } = deps;

  /** Validate → submit → encode, with metrics and logs; throws a ServiceError on failure. */
  async function execute(
    validate: () => Promise<ValidRequest>,
    ctx: { call: CallInfo; signal: AbortSignal; requestId: string; arrived: number; prefix: string },
  ): Promise<RunResponse> {
    let v: ValidRequest | null = null;
    try {
      if (!deps.isServing()) throw new UnavailableError('the server is not serving (starting up or shutting down); retry');
      v = await validate();
      const crash = deps.testHooks && ctx.call.metadata.get('x-florence2-test-crash').length > 0;
      const out = await scheduler.submit(
        { prompts: v.requests, numBeams: v.numBeams, maxNewTokens: v.maxNewTokens, ...(crash ? { crash: true } : {}) },
        { deadline: deadlineOf(ctx.call), signal: ctx.signal, requestId: ctx.requestId },
      );
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
      return response;
    } catch (err) {
      const e = toServiceError(err, ctx.requestId, logger, v, ctx.prefix);
      metrics.recordRequest(v?.task ?? 'unknown', codeName(e.code), (performance.now() - ctx.arrived) / 1000);
      logger.info('request failed', { requestId: ctx.requestId, task: v?.task, code: codeName(e.code), message: e.message });
      throw e;
    }
  }

  function unary<Req, Res>(
    validate: (req: Req, l: RequestLimits) => Promise<ValidRequest>,
    pick: (r: RunResponse) => Res,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const ac = new AbortController();
      call.on('cancelled', () => abortUnlessExpired(call, ac));
      execute(() => validate(call.request, limits), {
        call,
        signal: ac.signal,
        requestId: randomUUID(),
        arrived: performance.now(),
        prefix: '',
      }).then(
        (r) => callback(null, pick(r)),
        (e: ServiceError) => callback(e),
      );
    };
  }

  return {
    Caption: unary(validateCaption, (r) => r.caption!),
    Detect: unary(validateDetect, (r) => r.detect!),
    DetectOpenVocabulary: unary(validateOpenVocabulary, (r) => r.open_vocabulary!),
    GroundPhrases: unary(validatePhraseGrounding, (r) => r.phrase_grounding!),
    Segment: unary(validateSegment, (r) => r.segment!),
    Ocr: unary(validateOcr, (r) => r.ocr!),
    DescribeRegion: unary(validateRegion, (r) => r.region!),
    Run: unary(validateRun, (r) => r),

    Stream(call: grpc.ServerDuplexStream<StreamRequest__Output, StreamResponse>) {
      const inFlight = new Map<string, AbortController>();
      let inputEnded = false;
      let closed = false;
      const finishIfDone = () => {
        if (inputEnded && inFlight.size === 0 && !closed) {
          closed = true;
          call.end();
        }
      };
      // Backpressure: while the client does not read our responses, stop reading its requests.
      const send = (msg: StreamResponse) => {
        if (closed) return;
        if (!call.write(msg)) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      };
      const fail = (id: string, e: ServiceError) => send({ request_id: id, error: { code: e.code, message: e.message } });
      call.on('data', (msg: StreamRequest__Output) => {
        const id = msg.request_id;
        if (!id) return fail('', new InvalidArgumentError('request_id', '`request_id` is required on every stream request'));
        if (inFlight.has(id))
          return fail(
            id,
            new InvalidArgumentError('request_id', `\`request_id\` ${JSON.stringify(id)} is already in flight on this stream`),
          );
        const ac = new AbortController();
        inFlight.set(id, ac);
        const requestId = `${randomUUID()}:${id}`;
        execute(
          () =>
            msg.request
              ? validateRun(msg.request, limits, 'request.')
              : Promise.reject(new InvalidArgumentError('request', '`request` is required')),
          {
            call,
            signal: ac.signal,
            requestId,
            arrived: performance.now(),
            prefix: 'request.',
          },
        )
          .then(
            (result) => send({ request_id: id, result }),
            (e: ServiceError) => fail(id, e),
          )
          .finally(() => {
            inFlight.delete(id);
            finishIfDone();
          });
      });
      call.on('end', () => {
        inputEnded = true;
        finishIfDone();
      });
      call.on('cancelled', () => {
        closed = true;
        for (const ac of inFlight.values()) abortUnlessExpired(call, ac);
      });
      call.on('error', () => {
        closed = true;
        for (const ac of inFlight.values()) ac.abort();
      });
    },

    GetModelInfo(_call, callback) {
      callback(null, deps.modelInfo());
    },
  };
}
