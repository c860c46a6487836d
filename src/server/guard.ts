/**
 * What every call passes before a handler sees it, as one grpc-js server interceptor:
 *
 * 1. Authentication: with a tokens file, every call but health needs `authorization: Bearer <token>`
 *    (UNAUTHENTICATED otherwise). The client is the token's name, else the mTLS certificate's CN, else
 *    the peer address.
 * 2. Per-client bounds on unary calls (in flight, rate): refused before the message is read. Stream
 *    requests are admitted one by one by the service.
 * 3. The memory budget ({@link ByteBudget}): a compressed message reserves the message size limit
 *    before its read starts, since grpc-js decompresses it whole first; an uncompressed one takes its
 *    decoded size when it arrives. Over budget, a unary call is refused and a Stream request is
 *    replaced by a RejectedMessage the service answers. What a call holds is released when it ends
 *    (Stream requests: when the service answers them, {@link CallContext.releaseMessage}).
 */
import * as grpc from '@grpc/grpc-js';
import { ResourceExhaustedError, type ServiceError, UnauthenticatedError } from '../common/errors';
import type { REFUSAL_REASONS } from '../metrics/registry';
import type { TokenAuth } from './auth';
import type { ByteBudget, Ticket } from './budget';
import type { ClientLimits } from './client-limits';
import { RejectedMessage, decodedBytes, isRejected } from './wire-guard';

/** What the service knows of a call from the guard, found with {@link callContext}. */
export interface CallContext {
  /** Token name, certificate CN or peer address. */
  readonly client: string;
  /** Whether the client proved who it is (token or client certificate). */
  readonly authenticated: boolean;
  /** Gives back the budget a Stream request holds; the call's end gives back the rest. */
  releaseMessage(msg: unknown): void;
}

export interface GuardOptions {
  budget: ByteBudget;
  /** The message size limit: what a compressed message reserves before it is read. */
  maxMessageBytes: number;
  clientLimits: ClientLimits;
  /** Returns the token auth in use (it can be swapped on reload), or null when tokens are off. */
  auth: () => TokenAuth | null;
  /** A unary call whose message has not arrived this long after its read started is ended (slow senders hold budget). */
  receiveTimeoutMs: number;
  /** Hears every call (or Stream request) the guard refuses, for metrics and logs. */
  onRefused?: (what: { path: string; client: string; reason: RefusalReason; error: ServiceError }) => void;
}

/** Why the guard refused: a metrics label. */
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Paths that stay open without credentials and outside the client bounds: probes must always get through. */
const OPEN_PREFIXES = ['/grpc.health.v1.Health/'];

const contexts = new WeakMap<grpc.Metadata, CallContext>();

/** The guard's view of a call, from the metadata the handler got. */
export function callContext(metadata: grpc.Metadata): CallContext | undefined {
  return contexts.get(metadata);
}

/** Gives a call from another transport (HTTP/JSON) the context the guard gives a gRPC call. */
export function bindCallContext(metadata: grpc.Metadata, context: CallContext): void {
  contexts.set(metadata, context);
}

/** The client a call comes from when it has no credentials: the peer's address, without the port. */
function peerAddress(call: grpc.ServerInterceptingCallInterface): string {
  return call.getConnectionInfo().remoteAddress ?? call.getPeer();
}

function certificateName(call: grpc.ServerInterceptingCallInterface): string | null {
  const cert = call.getAuthContext().sslPeerCertificate;
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? `cn:${cn}` : null;
}

/**
 * Whether the call's messages may be compressed. grpc-js keeps the request's `grpc-encoding` on its
 * innermost call object and strips it from the metadata; when that object does not say (another
 * grpc-js version), every call counts as compressed, which only costs concurrency.
 */
function mayBeCompressed(call: grpc.ServerInterceptingCallInterface): boolean {
  const encoding = (call as unknown as { incomingEncoding?: unknown }).incomingEncoding;
  return encoding !== 'identity';
}

const toStatus = (e: ServiceError): grpc.StatusObject => ({
  code: e.code,
  details: e.message,
  metadata: (e as { metadata?: grpc.Metadata }).metadata ?? new grpc.Metadata(),
});

export function guardInterceptor(options: GuardOptions): grpc.ServerInterceptor {
  return (method, inner) => {
    const open = OPEN_PREFIXES.some((p) => method.path.startsWith(p));
    const unary = !method.requestStream;
    const compressed = mayBeCompressed(inner);
    let client = peerAddress(inner);
    let releaseAdmission: (() => void) | null = null;
    let pendingRead: { cancel(): void } | null = null;
    let readReservation: Ticket | null = null;
    let receiveTimer: NodeJS.Timeout | null = null;
    const held = new Map<object, Ticket>();
    let ended = false;

    const end = () => {
      if (ended) return;
      ended = true;
      releaseAdmission?.();
      pendingRead?.cancel();
      readReservation?.release();
      if (receiveTimer) clearTimeout(receiveTimer);
      for (const t of held.values()) t.release();
      held.clear();
    };
    const refuse = (reason: RefusalReason, error: ServiceError) => {
      options.onRefused?.({ path: method.path, client, reason, error });
      call.sendStatus(toStatus(error));
    };

    class GuardedCall extends grpc.ServerInterceptingCall {
      override startRead(): void {
        if (ended) return;
        if (!compressed || open) return super.startRead();
        pendingRead = options.budget.take(options.maxMessageBytes, client, (ticket) => {
          pendingRead = null;
          if (ended) return ticket.release();
          readReservation = ticket;
          if (unary) {
            receiveTimer = setTimeout(
              () =>
                refuse(
                  'receive_timeout',
                  new ResourceExhaustedError(
                    `the request message did not arrive within ${options.receiveTimeoutMs} ms of its read starting`,
                  ),
                ),
              options.receiveTimeoutMs,
            );
            receiveTimer.unref();
          }
          super.startRead();
        });
      }
    }

    const call: GuardedCall = new GuardedCall(inner, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            let authenticated = false;
            if (!open) {
              const auth = options.auth();
              const byCert = certificateName(inner);
              if (auth) {
                const name = auth.identify(metadata);
                if (name === null)
                  return refuse(
                    'unauthenticated',
                    new UnauthenticatedError('this server needs `authorization: Bearer <token>` with a known token on every call'),
                  );
                client = name;
                authenticated = true;
              } else if (byCert) {
                client = byCert;
                authenticated = true;
              }
              if (unary) {
                try {
                  releaseAdmission = options.clientLimits.admit(client);
                } catch (err) {
                  return refuse('client_limit', err as ServiceError);
                }
              }
            }
            metadata.remove('authorization');
            contexts.set(metadata, {
              client,
              authenticated,
              releaseMessage: (msg) => {
                if (typeof msg !== 'object' || msg === null) return;
                held.get(msg)?.release();
                held.delete(msg);
              },
            });
            nextMetadata(metadata);
          },
          onReceiveMessage: (msg, nextMessage) => {
            if (receiveTimer) clearTimeout(receiveTimer);
            receiveTimer = null;
            const bytes = decodedBytes(msg);
            let ticket: Ticket | null;
            if (readReservation) {
              // The reservation covered the worst case; keep what the message really holds.
              ticket = readReservation;
              readReservation = null;
              ticket.resize(bytes);
            } else {
              ticket = options.budget.tryTake(bytes, client);
            }
            if (ticket === null) {
              const error = new ResourceExhaustedError(
                `the server holds its request memory budget of ${options.budget.total} bytes; this ${bytes}-byte request cannot be held now, retry`,
                { retryAfterMs: 200 },
              );
              if (unary) return refuse('memory_budget', error);
              options.onRefused?.({ path: method.path, client, reason: 'memory_budget', error });
              const requestId = (msg as { request_id?: unknown }).request_id;
              return nextMessage(new RejectedMessage('request', 'budget', error.message, typeof requestId === 'string' ? requestId : ''));
            }
            if (typeof msg === 'object' && msg !== null && !isRejected(msg)) held.set(msg as object, ticket);
            else ticket.release();
            nextMessage(msg);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            pendingRead?.cancel();
            pendingRead = null;
            readReservation?.release();
            readReservation = null;
            nextHalfClose();
          },
          onCancel: () => end(),
        }),
      sendStatus: (status, nextStatus) => {
        end();
        nextStatus(status);
      },
    });
    return call;
  };
}
