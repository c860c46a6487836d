/**
 * A tiny structured logger: one JSON object per line (`time`, `level`, `msg`, then fields), written
 * to stderr by default so stdout stays free for command output. No dependency: the server needs
 * levels, bound fields (`requestId`, `device`) and safe Error serialisation, nothing more.
 */

/** The levels, from most to least verbose. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Extra key/values attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where lines go: anything with a `write(string)` (a stream, or an array-backed fake in tests). */
export interface LogSink {
  write(chunk: string): unknown;
}

/** A structured logger; `child` returns a logger that adds `fields` to every line. */
export interface Logger {
  /** The configured minimum level; lines below it are dropped. */
  readonly level: LogLevel;
  /** Detail for debugging (per-request traces). */
  debug(msg: string, fields?: LogFields): void;
  /** Normal lifecycle events (listening, serving, shutting down). */
  info(msg: string, fields?: LogFields): void;
  /** Something degraded but handled (a worker replaced, a CPU fallback). */
  warn(msg: string, fields?: LogFields): void;
  /** A failure that needs attention. */
  error(msg: string, fields?: LogFields): void;
  /** A logger that writes the same way with `fields` merged into every line (call-site fields win). */
  child(fields: LogFields): Logger;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level written. */
  level: LogLevel;
  /** Destination; default `process.stderr`. */
  stream?: LogSink;
  /** Fields bound to every line (e.g. `{ component: 'server' }`). */
  fields?: LogFields;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys every line starts with; fields with the same name are kept under `_<key>` instead of replacing them. */
const RESERVED = new Set(['time', 'level', 'msg']);

/** `{ name, message, stack }` plus a string/number `code` and a serialised `cause` when present. */
function serializeError(err: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  const cause = (err as { cause?: unknown }).cause;
  // Bounded so a cyclic cause chain cannot recurse forever.
  if (cause !== undefined && depth < 5) out.cause = cause instanceof Error ? serializeError(cause, depth + 1) : cause;
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return serializeError(value);
  // JSON.stringify throws on bigint; a log line must never throw.
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Like `replacer`, and replaces objects seen before with "[Circular]"; used only when the fast path throws. */
function safeReplacer(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (key, value) => {
    const v = replacer(key, value);
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[Circular]';
      seen.add(v);
    }
    return v;
  };
}

function stringify(entry: LogFields): string {
  try {
    return JSON.stringify(entry, replacer);
  } catch {
    return JSON.stringify(entry, safeReplacer());
  }
}

/** Creates a JSON-lines logger. */
export function createLogger(options: LoggerOptions): Logger {
  const sink: LogSink = options.stream ?? process.stderr;
  const min = RANK[options.level];
  if (min === undefined)
    throw new TypeError(`createLogger: unknown level ${JSON.stringify(options.level)} (expected one of ${LOG_LEVELS.join(', ')})`);

  const make = (bound: LogFields): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
      if (RANK[level] < min) return;
      const entry: LogFields = { time: new Date().toISOString(), level, msg };
      for (const src of [bound, fields]) {
        if (!src) continue;
        for (const [k, v] of Object.entries(src)) entry[RESERVED.has(k) ? `_${k}` : k] = v;
      }
      try {
        sink.write(`${stringify(entry)}\n`);
      } catch {
        // Logging must not take the server down (e.g. a closed pipe).
      }
    };
    return {
      level: options.level,
      debug: (msg, fields) => write('debug', msg, fields),
      info: (msg, fields) => write('info', msg, fields),
      warn: (msg, fields) => write('warn', msg, fields),
      error: (msg, fields) => write('error', msg, fields),
      child: (fields) => make({ ...bound, ...fields }),
    };
  };
  return make({ ...(options.fields ?? {}) });
}
