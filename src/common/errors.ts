/**
 * One error class per gRPC status the server emits. grpc-js sends `code` and `details` of an error
 * passed to a callback as the call's status, so handlers can pass these through as they are.
 */
import { Metadata, status } from '@grpc/grpc-js';
import type { WorkerErrorField } from './protocol';

export abstract class ServiceError extends Error {
  abstract readonly code: status;
  /** Sent to the client as the status details. */
  get details(): string {
    return this.message;
  }
  /** Whether a client may retry the same request. */
  get retryable(): boolean {
    return false;
  }
}

/** A request field is missing, malformed or beyond a limit. The message names the field. */
export class InvalidArgumentError extends ServiceError {
  readonly code = status.INVALID_ARGUMENT;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message.includes(`\`${field}\``) ? message : `\`${field}\`: ${message}`);
    this.name = 'InvalidArgumentError';
  }
}

/**
 * An invalid argument found by the worker: `field` is still the library's name for the input
 * (`text`, `image`, `numBeams`, ...) until the service renames it for the request (validate.ts).
 */
export class WorkerInputError extends InvalidArgumentError {
  constructor(
    readonly libraryField: WorkerErrorField,
    message: string,
  ) {
    super(libraryField, message);
    this.name = 'WorkerInputError';
  }
}

/**
 * Admission bounds reached: retry later. With `retryAfterMs`, the trailers carry
 * `grpc-retry-pushback-ms`, the key gRPC retry policies read.
 */
export class ResourceExhaustedError extends ServiceError {
  readonly code = status.RESOURCE_EXHAUSTED;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { retryAfterMs?: number } = {}) {
    super(message);
    this.retryAfterMs = options.retryAfterMs === undefined ? undefined : Math.max(0, Math.ceil(options.retryAfterMs));
  }
  override get retryable() {
    return true;
  }
  /** Read by grpc-js as the status trailers. */
  get metadata(): Metadata | undefined {
    if (this.retryAfterMs === undefined) return undefined;
    const md = new Metadata();
    md.set(RETRY_PUSHBACK_KEY, String(this.retryAfterMs));
    return md;
  }
}

/** The trailer of a RESOURCE_EXHAUSTED answer that says when to retry, in milliseconds. */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';

/** No valid credentials on a call that needs them. */
export class UnauthenticatedError extends ServiceError {
  readonly code = status.UNAUTHENTICATED;
}

export class DeadlineExceededError extends ServiceError {
  readonly code = status.DEADLINE_EXCEEDED;
}

export class CancelledError extends ServiceError {
  readonly code = status.CANCELLED;
}

/** Not ready, draining, or a worker died mid-request: retry, possibly elsewhere. */
export class UnavailableError extends ServiceError {
  readonly code = status.UNAVAILABLE;
  override get retryable() {
    return true;
  }
}

/** Only for the unexpected; the message sent to clients carries the request id, the log the cause. */
export class InternalError extends ServiceError {
  readonly code = status.INTERNAL;
}
