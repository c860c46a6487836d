/** The exit codes of every `florence2` command, in one place: scripts rely on them. */
export const EXIT = {
  ok: 0,
  /** The command failed (predict/annotate: some image failed, the rest were processed). */
  failure: 1,
  usage: 2,
  /** What the command needs cannot be reached: the server (predict), the Hub or the cache in offline mode (serve, models). */
  unreachable: 3,
  /** Stopped by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
