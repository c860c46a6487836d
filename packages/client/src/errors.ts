/**
 * Typed client errors, one class per gRPC status the server documents. Every failed call rejects
 * with a {@link Florence2Error}; `instanceof` on the subclass tells callers what to do next.
 */
import * as grpc from '@grpc/grpc-js';

/** What a status can be built from: a grpc-js ServiceError, a StatusObject, or a stream error message. */
export interface StatusLike {
  code: number;
  /** grpc-js ServiceError / StatusObject text. */
  details?: string;
  /** Stream errors (StreamError.message) and plain Errors carry their text here. */
  message?: string;
  metadata?: grpc.Metadata;
}

/** Base class: a failed call with its gRPC status code and the server's details. */
export class Florence2Error extends Error {
  /** The gRPC status code. */
  readonly code: grpc.status;
  /** The status details as the server sent them (for INVALID_ARGUMENT: names the field and limit). */
  readonly details: string;
  /** Trailing metadata of the failed call, when there was a call. */
  readonly metadata: grpc.Metadata | undefined;
  /** How many attempts were made before giving up (1 = no retry). */
  attempts: number;

  constructor(code: grpc.status, details: string, options: { metadata?: grpc.Metadata; attempts?: number; cause?: unknown } = {}) {
    super(`${grpc.status[code] ?? `status ${code}`}: ${details}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = details;
    this.metadata = options.metadata;
    this.attempts = options.attempts ?? 1;
  }

  /** The status code's name, e.g. `INVALID_ARGUMENT`. */
  get codeName(): string {
    return grpc.status[this.code] ?? 'UNKNOWN';
  }

  /** Whether the same request may succeed if sent again (the client retries these itself). */
  get retryable(): boolean {
    return false;
  }

  /**
   * The typed error for a status: a grpc-js ServiceError, a StatusObject or a stream's
   * `{ code, message }`. An existing Florence2Error is returned as it is.
   */
  static fromStatus(err: StatusLike | Florence2Error, attempts = 1): Florence2Error {
    if (err instanceof Florence2Error) return err;
    const details = tidyConnectionText(err.details ?? stripCodePrefix(err.message ?? ''));
    const options = { metadata: err.metadata, attempts, cause: err instanceof Error ? err : undefined };
    switch (err.code as grpc.status) {
      case grpc.status.INVALID_ARGUMENT:
        return new InvalidArgumentError(details, options);
      case grpc.status.RESOURCE_EXHAUSTED:
        return new ResourceExhaustedError(details, options);
      case grpc.status.DEADLINE_EXCEEDED:
        return new DeadlineExceededError(details, options);
      case grpc.status.CANCELLED:
        return new CancelledError(details, options);
      case grpc.status.UNAVAILABLE:
        return new UnavailableError(details, options);
      case grpc.status.INTERNAL:
        return new InternalError(details, options);
      default:
        return new UnknownStatusError(err.code, details, options);
    }
  }
}

type SubclassOptions = { metadata?: grpc.Metadata; attempts?: number; cause?: unknown };

/**
 * grpc-js's text for a failed connection ends with "Resolution note: " even when the resolver has
 * nothing to add, and nests the socket error's "Error: " after "Last error:"; drop both, so the
 * message ends with its cause ("... Last error: connect ECONNREFUSED 127.0.0.1:1"). A note with
 * content is kept.
 */
function tidyConnectionText(details: string): string {
  return details
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/Last error: Error: /, 'Last error: ')
    .trimEnd();
}

/** grpc-js messages read "3 INVALID_ARGUMENT: text"; keep only the text when no details came separately. */
function stripCodePrefix(message: string): string {
  return message.replace(/^\d+ [A-Z_]+: /, '');
}

/** A request field is missing, malformed or beyond a server limit. Not retried. */
export class InvalidArgumentError extends Florence2Error {
  /** The request field the server named (the first backticked name in the details), e.g. `image.data`. */
  readonly field: string | undefined;
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.INVALID_ARGUMENT, details, options);
    this.field = /`([^`]+)`/.exec(details)?.[1];
  }
}

/**
 * The server is at its queue bound. Retried with backoff. (grpc-js also reports an oversized
 * message with this code; that one is not retryable.)
 */
export class ResourceExhaustedError extends Florence2Error {
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.RESOURCE_EXHAUSTED, details, options);
  }
  override get retryable(): boolean {
    return !isMessageSizeError(this.details);
  }
}

/** The call's deadline passed (queued, running, or across retries). */
export class DeadlineExceededError extends Florence2Error {
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.DEADLINE_EXCEEDED, details, options);
  }
}

/** The call was cancelled (by an AbortSignal, or the server saw the client go away). */
export class CancelledError extends Florence2Error {
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.CANCELLED, details, options);
  }
}

/** The server is unreachable, starting, draining, or a worker died during the request. Retried. */
export class UnavailableError extends Florence2Error {
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.UNAVAILABLE, details, options);
  }
  override get retryable(): boolean {
    return true;
  }
}

/** An unexpected server error; the details carry the server's request id for its logs. */
export class InternalError extends Florence2Error {
  constructor(details: string, options: SubclassOptions = {}) {
    super(grpc.status.INTERNAL, details, options);
  }
}

/** Any status the API does not document (UNKNOWN, UNIMPLEMENTED, UNAUTHENTICATED, ...). */
export class UnknownStatusError extends Florence2Error {
  constructor(code: grpc.status, details: string, options: SubclassOptions = {}) {
    super(code, details, options);
  }
}

/** grpc-js's own RESOURCE_EXHAUSTED for a message over the channel's size limit: retrying cannot help. */
export function isMessageSizeError(details: string): boolean {
  return /message larger than max/i.test(details);
}
