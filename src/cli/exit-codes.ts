/** The exit codes of every `florence2` command, in one place: scripts rely on them. */
export const EXIT = {
  ok: 0,
  /** The command failed (predict/annotate: some image failed, the rest were processed). */
  failure: 1,
  usage: 2,
  /** What the command needs cannot be reached: the server (predict), the Hub or the cache in offline mode (serve, models). */
  unreachable: 3,
  /**
   * serve: the stop was forced by a third SIGTERM/SIGINT before the drain ended. Requests still queued
   * or running were answered UNAVAILABLE (clients retry them elsewhere); the transport and the worker
   * threads were closed as usual. A drain that ends on its own exits 0, cut requests or not.
   */
  forcedStop: 4,
  /** Stopped by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
