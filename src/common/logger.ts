/**
 * The structured logger: pino underneath (one JSON object per line: `level`, `time`, fields, `msg`),
 * written to stderr by default so stdout stays free for command output, or pretty-printed for a
 * terminal. The `Logger` interface is ours so call sites stay independent of pino; what we add on
 * top of pino: levels by name, fields that never replace `time`/`level`/`msg`, Errors serialised
 * anywhere in the fields (with their cause chain), bigints as strings, and the fields of the
 * request under way ({@link withLogContext}) on every line.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pino from 'pino';
import { prettyFactory } from 'pino-pretty';

/** The levels, from most to least verbose. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** How lines are written: JSON lines, pretty (for a terminal), or pretty only when stderr is a TTY. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** One of {@link LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number];

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
  /** Default `json`; `auto` is pretty when `process.stderr` is a TTY. */
  format?: LogFormat;
  /** Pretty output in colour; default: when the sink is a TTY. */
  colorize?: boolean;
}

/**
 * `auto` decided for this process's stderr, with colour when it is a terminal: what a worker thread
 * (whose stderr is never a TTY itself) is started with, so its lines look like the main thread's.
 */
export function resolveLogFormat(format: LogFormat): { format: 'json' | 'pretty'; colorize: boolean } {
  const tty = process.stderr.isTTY === true;
  return { format: format === 'pretty' || (format === 'auto' && tty) ? 'pretty' : 'json', colorize: tty };
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys every line has; fields with the same name are kept under `_<key>` instead of replacing them. */
const RESERVED = new Set(['time', 'level', 'msg']);

/** The fields of the request under way (requestId, traceId): added to every line logged within it. */
const context = new AsyncLocalStorage<LogFields>();

/**
 * Runs `fn` with `fields` on every line logged inside it, also in the callbacks and promises it
 * starts (AsyncLocalStorage), by any logger; fields given at the call site win. Nested calls add
 * to the outer fields.
 */
export function withLogContext<T>(fields: LogFields, fn: () => T): T {
  const outer = context.getStore();
  return context.run(outer ? { ...outer, ...fields } : fields, fn);
}

/** The fields {@link withLogContext} set for the code running now (empty outside a request). */
export function logContext(): LogFields {
  return context.getStore() ?? {};
}

/** `{ name, message, stack }` plus a string/number `code` and a serialised `cause` when present. */
function serializeError(err: Error, seen: WeakSet<object>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  const cause = (err as { cause?: unknown }).cause;
  // Bounded so a cyclic cause chain cannot recurse forever.
  if (cause !== undefined && depth < 5) out.cause = cause instanceof Error ? serializeError(cause, seen, depth + 1) : loggable(cause, seen);
  return out;
}

/**
 * A value JSON can carry: Errors as objects, bigints as strings, a repeated object as "[Circular]".
 * Only arrays and plain objects are walked; anything else is left to pino's serialiser.
 */
function loggable(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  if (value instanceof Error) return serializeError(value, seen, 0);
  if (Array.isArray(value)) return value.map((v) => loggable(v, seen));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(value)) out[k] = loggable(v, seen);
  return out;
}

/** The fields of one line, in precedence order (later wins), reserved names moved aside. */
function lineFields(sources: Array<LogFields | undefined>): LogFields {
  const entry: LogFields = {};
  for (const src of sources) {
    if (!src) continue;
    for (const [k, v] of Object.entries(src)) entry[RESERVED.has(k) ? `_${k}` : k] = v;
  }
  return loggable(entry, new WeakSet()) as LogFields;
}

/** A sink that turns pino's JSON lines into pino-pretty's text (synchronous, so it works the same in worker threads). */
function prettySink(sink: LogSink, colorize: boolean): LogSink {
  const pretty = prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l' });
  return { write: (line: string) => sink.write(pretty(line)) };
}

/** Creates a logger; see {@link LoggerOptions}. */
export function createLogger(options: LoggerOptions): Logger {
  const sink: LogSink = options.stream ?? process.stderr;
  const min = RANK[options.level];
  if (min === undefined)
    throw new TypeError(`createLogger: unknown level ${JSON.stringify(options.level)} (expected one of ${LOG_LEVELS.join(', ')})`);
  const format = options.format ?? 'json';
  if (!LOG_FORMATS.includes(format))
    throw new TypeError(`createLogger: unknown format ${JSON.stringify(format)} (expected one of ${LOG_FORMATS.join(', ')})`);
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const destination = pretty ? prettySink(sink, options.colorize ?? (sink as { isTTY?: boolean }).isTTY === true) : sink;
  const root = pino(
    {
      level: options.level,
      // No pid/hostname: the line holds what we log; the platform knows where it ran.
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Fields are made loggable before pino sees them (lineFields); its own err serialiser would redo it.
      serializers: { err: (e: unknown) => e },
    },
    {
      write(line: string) {
        try {
          destination.write(line);
        } catch {
          // Logging must not take the server down (e.g. a closed pipe).
        }
      },
    },
  );

  const make = (bound: LogFields): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
      if (RANK[level] < min) return;
      root[level](lineFields([context.getStore(), bound, fields]), msg);
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
