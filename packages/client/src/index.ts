/**
 * florence2-client: a thin typed client for the florence2.v1 gRPC API.
 *
 * ```ts
 * const client = new Florence2Client({ address: 'localhost:50051' });
 * const { boxes } = await client.detect('photo.jpg', { deadlineMs: 10_000 });
 * client.close();
 * ```
 */
export { Florence2Client, DEFAULT_MAX_MESSAGE_BYTES } from './client';
export type { Florence2ClientOptions, CredentialsInput } from './client';
export {
  Florence2Error,
  InvalidArgumentError,
  ResourceExhaustedError,
  DeadlineExceededError,
  CancelledError,
  UnavailableError,
  InternalError,
  UnknownStatusError,
} from './errors';
export type { StatusLike } from './errors';
export { LOAD_BALANCING_POLICIES, DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, defaultLoadBalancing } from './balancing';
export type { LoadBalancing } from './balancing';
export { DEFAULT_RETRY_POLICY, backoffMs, isRetryable } from './retry';
export type { RetryPolicy } from './retry';
export { DEFAULT_MAX_IN_FLIGHT } from './stream';
export type { StreamItem, StreamOutcome, StreamOptions } from './stream';
export { TASK_TOKENS, TASK_NAMES, TASK_INPUT, resolveTask, requestForTask, TaskInputError } from './tasks';
export type { TaskToken, TaskName, TaskInputKind, TaskInputs } from './tasks';
export type * from './types';
