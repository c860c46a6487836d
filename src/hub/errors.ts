/** Errors of the Hub client; the CLI maps them to exit codes (OfflineError → 3, the rest → 1). */

/** Any failure to resolve, download or manage a cached model. */
export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Offline mode is on and the model (or a file of it) is not in the cache. The message says how to
 * serve a local folder instead or pull the model while online.
 */
export class OfflineError extends HubError {}

/** The Hub answered with an HTTP error that retrying will not fix (401, 403, 404, other 4xx), or 5xx after the retries. */
export class HubHttpError extends HubError {
  constructor(
    message: string,
    /** HTTP status of the answer. */
    readonly status: number,
    /** The URL that answered (no credentials in it). */
    readonly url: string,
    /** What a 429 or 503 answer's Retry-After asked for, in ms; null when it sent none. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

/** A downloaded file's size or sha256 differs from what the Hub stated. Its partial download is deleted. */
export class ChecksumError extends HubError {
  constructor(
    /** Repository path of the file, e.g. `onnx/encoder_model.onnx`. */
    readonly file: string,
    /** `sha256` or `size`. */
    readonly kind: 'sha256' | 'size',
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${file}: ${kind} mismatch: expected ${expected}, got ${actual}; the download was deleted, run the pull again`);
  }
}

/** Another live process holds the download lock of the same model folder. */
export class LockedError extends HubError {
  constructor(
    readonly lockFile: string,
    readonly pid: number | null,
  ) {
    super(
      `another process${pid === null ? '' : ` (pid ${pid})`} is downloading this model (lock ${lockFile}); wait for it to finish, or delete the lock file if that process is gone`,
    );
  }
}

/**
 * Connection-level failure: a permanent one (the host name does not resolve, a certificate error) at
 * once, a passing one (reset, refused, timeout, cut body) after the retries.
 */
export class NetworkError extends HubError {}
