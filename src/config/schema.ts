/**
 * Every setting of `florence2 serve`, in one table: key, flag, environment variable, type, default,
 * range and a one-line doc. `load.ts` reads flags, environment and the optional JSON file against
 * this table; `helpText()` prints it. Adding a setting means adding a `Config` field and a row here.
 */
import { DEFAULT_MODEL, repoId } from '../hub/names';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  DTYPE_SUFFIX,
  MODULES,
  isGpuProvider,
  isProvider,
  type Dtype,
  type DtypeByModule,
  type ModuleName,
  type Provider,
} from '../runtime/model-files';
import type { ResampleMode } from '../florence/preprocess';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../common/logger';
import { TRACING_MODES, type TracingMode } from '../common/tracing';

export type { DtypeByModule, Provider };

/** A device's batching limits, resolved from the settings. */
export interface DeviceBatching {
  maxBatchRows: number;
  maxQueueDelayMs: number;
  maxVisionBatch: number;
}

/**
 * What the auto settings resolve to. CPU: batches gather what arrives while a worker is busy and a
 * free worker waits only briefly; the vision encoder runs one image per call, since on base a call
 * over 4 images took 2.9 s per image against 2.1 s alone (npm run bench:serve investigation). GPU:
 * far more rows fit in a step.
 */
export const AUTO_BATCHING: Readonly<Record<'cpu' | 'gpu', DeviceBatching>> = Object.freeze({
  cpu: Object.freeze({ maxBatchRows: 16, maxQueueDelayMs: 2, maxVisionBatch: 1 }),
  gpu: Object.freeze({ maxBatchRows: 64, maxQueueDelayMs: 5, maxVisionBatch: 16 }),
});

/** The batching limits of one device: the settings, with auto values by the device's kind. */
export function batchingFor(
  config: Pick<Config, 'maxBatchRows' | 'maxQueueDelayMs' | 'maxVisionBatch'>,
  device: Pick<DeviceSpec, 'provider'>,
): DeviceBatching {
  const auto = AUTO_BATCHING[isGpuProvider(device.provider) ? 'gpu' : 'cpu'];
  return {
    maxBatchRows: config.maxBatchRows > 0 ? config.maxBatchRows : auto.maxBatchRows,
    maxQueueDelayMs: config.maxQueueDelayMs >= 0 ? config.maxQueueDelayMs : auto.maxQueueDelayMs,
    maxVisionBatch: config.maxVisionBatch > 0 ? config.maxVisionBatch : auto.maxVisionBatch,
  };
}

/** One device pool, parsed from a `--devices` item. */
export interface DeviceSpec {
  /** Normalised name, `provider:index` (`cpu` → `cpu:0`, `webgpu` → `webgpu:0`); used in logs and metric labels. */
  readonly name: string;
  /** Execution provider of the pool. */
  readonly provider: Provider;
  /** Device index (GPU ordinal for cuda/tensorrt; pool number for cpu; 0 for webgpu). */
  readonly deviceId: number;
}

/** The validated, deep-frozen server configuration (see {@link SETTINGS} for flags, env vars and defaults). */
export interface Config {
  /**
   * Absolute path of the Florence-2 model folder (`config.json`, `onnx/*.onnx`, tokenizer files), or
   * `hub:<name>` for a Hub model that `serve` resolves to its cached folder (default `hub:base-ft`).
   */
  readonly model: string;
  /** Never use the network to get the model: a Hub model must be in the cache (HF_HUB_OFFLINE also turns this on). */
  readonly offline: boolean;
  /** Address the gRPC server binds. */
  readonly host: string;
  /** gRPC port; 0 lets the OS pick a free port (the bound port is logged). */
  readonly port: number;
  /** Port of the /metrics, /livez, /readyz HTTP endpoint; 0 picks a free port, -1 disables it. */
  readonly metricsPort: number;
  /** Address the metrics endpoint binds. */
  readonly metricsHost: string;
  /** Port of the HTTP/JSON API (`POST /v1/<Rpc>`, `/openapi.json`), bound on `host`; 0 picks a free port, -1 = off. */
  readonly httpPort: number;
  /** Largest HTTP/JSON request body, in bytes, resolved (the setting's 0 = what a --max-message-bytes image takes in base64). */
  readonly httpMaxBodyBytes: number;
  /** Device pools, in the order given; no duplicates. */
  readonly devices: readonly DeviceSpec[];
  /** Worker threads per device pool. */
  readonly workersPerDevice: number;
  /** onnxruntime intra-op threads per worker, resolved (the setting's 0 = auto is replaced by the computed value). */
  readonly intraOpThreads: number;
  /** When a GPU execution provider cannot load, run that pool on CPU instead of failing the start. */
  readonly allowCpuFallback: boolean;
  /** onnxruntime's CPU memory arena: faster with it, 350–470 MiB less per worker on base without. */
  readonly cpuMemoryArena: boolean;
  /**
   * Dtype of every module (a single `--dtype` value applies to all four), or `auto`: per device
   * kind, the measured best variant of each module that the folder has (src/hub/dtypes.ts).
   */
  readonly dtype: DtypeByModule | 'auto';
  /** Image resize: `pil` is bit-exact with the reference preprocessing; `sharp` uses libvips, corrected to PIL's sample positions. */
  readonly resample: ResampleMode;
  /** Largest accepted decoded image, in pixels (width × height). */
  readonly maxImagePixels: number;
  /** Largest gRPC message received or sent, in bytes (after decompression). */
  readonly maxMessageBytes: number;
  /** Request bytes the server holds at once (see src/server/budget.ts); over it, requests wait to be read or are refused. */
  readonly requestMemoryBytes: number;
  /** Requests of one client in flight at once; 0 = unlimited. */
  readonly maxInflightPerClient: number;
  /** Requests per second one client may start (token bucket); 0 = unlimited. */
  readonly rateLimitPerClient: number;
  /** Requests a client may start at once after idling; 0 = one second's worth of the rate. */
  readonly rateLimitBurst: number;
  /** Longest a request may run when the client sets no deadline (or a later one), in ms; 0 = no bound. */
  readonly maxRequestMs: number;
  /** Most decoder rows × new tokens one request may ask for (rows = prompts × beams). */
  readonly maxRequestTokens: number;
  /** PEM certificate chain for TLS on the gRPC port, or null for plaintext. */
  readonly tlsCert: string | null;
  /** PEM private key of `tlsCert`. */
  readonly tlsKey: string | null;
  /** PEM CA bundle that client certificates must chain to (mTLS), or null. */
  readonly tlsClientCa: string | null;
  /** File of bearer tokens (one per line, optionally a client name after it), or null for no token auth. */
  readonly authTokensFile: string | null;
  /** gRPC server reflection: auto = on unless token auth is on. */
  readonly reflection: 'auto' | 'on' | 'off';
  /** Requests running at once per device pool, resolved (the setting's 0 = `workersPerDevice`). */
  readonly maxInFlightPerDevice: number;
  /** Decoder rows (prompts × beams) per worker batch; 0 = auto by device kind ({@link batchingFor}). */
  readonly maxBatchRows: number;
  /** How long the oldest waiting request waits for others while a worker is free; -1 = auto by device kind. */
  readonly maxQueueDelayMs: number;
  /** Images per vision-encoder call within a batch (bounds its memory); 0 = auto by device kind. */
  readonly maxVisionBatch: number;
  /** Requests waiting per device pool beyond the in-flight ones; more are rejected with RESOURCE_EXHAUSTED. */
  readonly maxQueuePerDevice: number;
  /** Largest `num_beams` a request may ask for. */
  readonly maxNumBeams: number;
  /** Largest `max_new_tokens` a request may ask for. */
  readonly maxNewTokens: number;
  /** Longest text input (phrase, expression), in characters. */
  readonly maxTextChars: number;
  /** Most classes in one open-vocabulary detection request. */
  readonly maxClasses: number;
  /**
   * Longest a client connection lives, in ms (0 = no limit): then the server asks the client to
   * reconnect (HTTP/2 GOAWAY), so clients that balance over several servers resolve their names
   * again and new replicas get load. grpc-js adds up to ±10% jitter.
   */
  readonly maxConnectionAgeMs: number;
  /** How long the calls still running on an aged connection may go on before it is closed, in ms (0 = until they end). */
  readonly maxConnectionAgeGraceMs: number;
  /** How long SIGTERM waits for in-flight and queued work before closing, in milliseconds. */
  readonly shutdownGraceMs: number;
  /** Minimum level of the JSON log lines written to stderr. */
  readonly logLevel: LogLevel;
  /** Log lines as JSON, pretty text, or pretty only when stderr is a terminal. */
  readonly logFormat: LogFormat;
  /** OpenTelemetry tracing: `auto` follows the standard OTEL_* variables (see src/common/tracing.ts). */
  readonly tracing: TracingMode;
  /** Absolute path of the JSON config file that was read, or null. */
  readonly configFile: string | null;
  /** Test-only behaviour (e.g. a request may ask its worker to crash). Never enable in production. */
  readonly testHooks: boolean;
}

/** A setting's key: a `Config` field. */
export type SettingKey = keyof Config;

/** Result of checking one raw value. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** What a parser may need besides the value. */
export interface ParseContext {
  /** Folder that relative paths resolve against (the cwd for flags and env, the file's folder for the config file). */
  baseDir: string;
}

/** 50 MiB: a 50 MP image (the default --max-image-pixels) as a JPEG at up to about 1 byte per pixel, which covers quality 95 photographs. */
export const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;

/** One row of the settings table. */
export interface Setting<K extends SettingKey = SettingKey> {
  /** camelCase key; also the key in the JSON config file. */
  readonly key: K;
  /** Command-line flag (`--kebab-case`). Boolean settings also accept `--no-<name>`. */
  readonly flag: string;
  /** Environment variable (`FLORENCE2_SCREAMING_SNAKE`). */
  readonly env: string;
  /** Value type, as shown in help. */
  readonly type: 'string' | 'path' | 'integer' | 'boolean' | 'enum' | 'devices' | 'dtype';
  /** Placeholder for the value in help (`N`, `PATH`, ...); empty for booleans. */
  readonly valueName: string;
  /** Default value; `undefined` marks a required setting. */
  readonly default: Config[K] | undefined;
  /** The default as written in help. */
  readonly defaultText: string;
  /** Allowed range or values, as written in help. */
  readonly range?: string;
  /** One-line description. */
  readonly doc: string;
  /** Left out of `--help` (test-only settings). */
  readonly hidden?: boolean;
  /** Checks a raw value: a string from a flag or env var, or any JSON value from the config file. */
  parse(raw: unknown, ctx: ParseContext): Parsed<Config[K]>;
}

/** Any row of the table, keyed correctly. */
export type AnySetting = { [K in SettingKey]: Setting<K> }[SettingKey];

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

/** How a rejected raw value is quoted in messages: strings in single quotes, JSON values as JSON. */
export function shown(raw: unknown): string {
  return typeof raw === 'string' ? `'${raw}'` : (JSON.stringify(raw) ?? String(raw));
}

function integer(min: number, max: number): (raw: unknown) => Parsed<number> {
  return (raw) => {
    let n: number | undefined;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) n = Number(raw);
    if (n === undefined || !Number.isSafeInteger(n) || n < min || n > max)
      return fail(`must be an integer in [${min}, ${max}], got ${shown(raw)}`);
    return ok(n);
  };
}

/** Booleans: JSON true/false, or the strings true/false/1/0 (any case). */
function boolean(raw: unknown): Parsed<boolean> {
  if (typeof raw === 'boolean') return ok(raw);
  const s = typeof raw === 'string' ? raw.trim().toLowerCase() : typeof raw === 'number' ? String(raw) : undefined;
  if (s === 'true' || s === '1') return ok(true);
  if (s === 'false' || s === '0') return ok(false);
  return fail(`must be true or false (or 1 or 0), got ${shown(raw)}`);
}

/**
 * `offline`: a boolean that also takes yes/no/on/off, because the Hub code reads FLORENCE2_OFFLINE
 * (like HF_HUB_OFFLINE) with those words too, and a value it accepts must not fail the start here.
 */
function offlineSwitch(raw: unknown): Parsed<boolean> {
  const s = typeof raw === 'string' ? raw.trim().toLowerCase() : undefined;
  if (s === 'yes' || s === 'on') return ok(true);
  if (s === 'no' || s === 'off') return ok(false);
  const b = boolean(raw);
  return b.ok ? b : fail(`must be true or false (or 1/0, yes/no, on/off), got ${shown(raw)}`);
}

/** 0 (off), or an integer in [min, max]: for limits where a tiny positive value is never meant. */
function offOrInteger(min: number, max: number): (raw: unknown) => Parsed<number> {
  const zero = integer(0, 0);
  const inRange = integer(min, max);
  return (raw) => {
    const r = zero(raw).ok ? zero(raw) : inRange(raw);
    return r.ok ? r : fail(`must be 0 (off) or an integer in [${min}, ${max}], got ${shown(raw)}`);
  };
}

function oneOf<T extends string>(values: readonly T[]): (raw: unknown) => Parsed<T> {
  return (raw) =>
    typeof raw === 'string' && (values as readonly string[]).includes(raw)
      ? ok(raw as T)
      : fail(`must be one of ${values.join('|')}, got ${shown(raw)}`);
}

function nonEmptyString(raw: unknown): Parsed<string> {
  return typeof raw === 'string' && raw.trim() !== '' ? ok(raw.trim()) : fail(`must be a non-empty string, got ${shown(raw)}`);
}

function existingDirectory(raw: unknown, ctx: ParseContext): Parsed<string> {
  const s = nonEmptyString(raw);
  if (!s.ok) return s;
  const abs = resolve(ctx.baseDir, s.value);
  let isDir: boolean;
  try {
    isDir = statSync(abs).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(
      `must be an existing directory, got ${shown(s.value)} (${code === 'ENOENT' ? 'no such file or directory' : (code ?? 'unreadable')})`,
    );
  }
  return isDir ? ok(abs) : fail(`must be an existing directory, got ${shown(s.value)} (not a directory)`);
}

/** Prefix of a `model` value that names a Hub model rather than a folder (resolved by `serve`). */
export const HUB_MODEL_PREFIX = 'hub:';

/**
 * A model folder, or a Hub model name (`base-ft`, `owner/name`): an existing directory wins; a
 * value that does not exist and reads as a Hub name becomes `hub:<name>`; a path-like value that
 * does not exist is an error (a typo must not turn into a download).
 */
function modelLocation(raw: unknown, ctx: ParseContext): Parsed<string> {
  const s = nonEmptyString(raw);
  if (!s.ok) return s;
  if (s.value.startsWith(HUB_MODEL_PREFIX)) return ok(s.value);
  const abs = resolve(ctx.baseDir, s.value);
  let exists = true;
  try {
    statSync(abs);
  } catch {
    exists = false;
  }
  if (!exists) {
    try {
      repoId(s.value);
      return ok(`${HUB_MODEL_PREFIX}${s.value}`);
    } catch {
      // not a Hub name either: report it as the missing folder it looks like
    }
  }
  return existingDirectory(raw, ctx);
}

function filePath(raw: unknown, ctx: ParseContext): Parsed<string | null> {
  const s = nonEmptyString(raw);
  return s.ok ? ok(resolve(ctx.baseDir, s.value)) : s;
}

/** The device item forms, for messages. */
const DEVICE_FORMS = 'cpu, cpu:N, cuda:N, tensorrt:N or webgpu';

/** Highest accepted device index; well above any real host, low enough to catch typos like cuda:10000. */
const MAX_DEVICE_INDEX = 1023;

/** Parses one `--devices` item; returns a message on failure. */
export function parseDevice(item: string): DeviceSpec | string {
  const m = /^([a-z]+)(?::(.*))?$/.exec(item.trim().toLowerCase());
  const provider = m?.[1];
  const index = m?.[2];
  if (!m || provider === undefined || !isProvider(provider)) {
    return `unknown device ${shown(item)} (expected ${DEVICE_FORMS})`;
  }
  if (provider === 'webgpu') {
    // onnxruntime-node picks the WebGPU adapter itself; an index would be silently ignored.
    return index === undefined ? { name: 'webgpu:0', provider, deviceId: 0 } : `${shown(item)}: webgpu takes no device index (use webgpu)`;
  }
  if (index === undefined) {
    // Plain `cpu` is the common case; a GPU without an ordinal is ambiguous on multi-GPU hosts.
    return provider === 'cpu'
      ? { name: 'cpu:0', provider, deviceId: 0 }
      : `${shown(item)} needs a device index (${provider}:N, e.g. ${provider}:0)`;
  }
  if (!/^\d+$/.test(index) || Number(index) > MAX_DEVICE_INDEX) {
    return `${shown(item)}: the device index must be an integer in [0, ${MAX_DEVICE_INDEX}]`;
  }
  const deviceId = Number(index);
  return { name: `${provider}:${deviceId}`, provider, deviceId };
}

/** A device list: a comma-separated string, or (in the config file) an array of strings. */
function deviceList(raw: unknown): Parsed<readonly DeviceSpec[]> {
  let items: string[];
  if (typeof raw === 'string') items = raw.split(',');
  else if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) items = raw;
  else return fail(`must be a comma-separated list (or an array of strings) of ${DEVICE_FORMS}, got ${shown(raw)}`);
  const errors: string[] = [];
  const devices: DeviceSpec[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (item.trim() === '') {
      errors.push(`item ${i + 1} is empty`);
      return;
    }
    const d = parseDevice(item);
    if (typeof d === 'string') errors.push(d);
    else if (seen.has(d.name)) errors.push(`${d.name} is listed more than once`);
    else {
      seen.add(d.name);
      devices.push(d);
    }
  });
  if (errors.length > 0) return fail(`${errors.join('; ')} (got ${shown(raw)})`);
  if (devices.length === 0) return fail('must name at least one device');
  return ok(devices);
}

const DTYPES = Object.keys(DTYPE_SUFFIX) as Dtype[];
const isDtype = (s: string): s is Dtype => (DTYPES as string[]).includes(s);
const isModule = (s: string): s is ModuleName => (MODULES as readonly string[]).includes(s);

/**
 * A dtype: one of {@link DTYPES} for every module, or `module=dtype,...` (modules not named: fp32).
 * The config file may also give an object `{ "decoder_model_merged": "q4" }`.
 */
function dtypeSpec(raw: unknown): Parsed<DtypeByModule | 'auto'> {
  let pairs: Array<[string, unknown]>;
  if (typeof raw === 'string') {
    const s = raw.trim();
    if (!s.includes('=')) {
      if (s === 'auto') return ok('auto');
      if (isDtype(s)) return ok(Object.fromEntries(MODULES.map((m) => [m, s])) as Record<ModuleName, Dtype>);
      return fail(`must be auto, one of ${DTYPES.join('|')} or a list module=dtype (modules: ${MODULES.join(', ')}), got ${shown(raw)}`);
    }
    pairs = s.split(',').map((item) => {
      const eq = item.indexOf('=');
      return eq < 0 ? [item.trim(), undefined] : [item.slice(0, eq).trim(), item.slice(eq + 1).trim()];
    });
  } else if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    pairs = Object.entries(raw);
  } else {
    return fail(`must be a dtype string or an object of module → dtype, got ${shown(raw)}`);
  }
  const out = Object.fromEntries(MODULES.map((m) => [m, 'fp32'])) as Record<ModuleName, Dtype>;
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const [module, dtype] of pairs) {
    if (!isModule(module)) errors.push(`unknown module ${shown(module)} (modules: ${MODULES.join(', ')})`);
    else if (seen.has(module)) errors.push(`${module} is given more than once`);
    else if (typeof dtype !== 'string' || !isDtype(dtype))
      errors.push(`${module}: dtype must be one of ${DTYPES.join('|')}, got ${shown(dtype ?? '')}`);
    else {
      seen.add(module);
      out[module] = dtype;
    }
  }
  if (errors.length > 0) return fail(`${errors.join('; ')} (got ${shown(raw)})`);
  return ok(out);
}

/** Row builder: keeps each row's `default` and `parse` typed by its key. */
const row = <K extends SettingKey>(s: Setting<K>): Setting<K> => s;

const GIB = 1024 * 1024 * 1024;

/**
 * The settings table. Precedence per setting: flag > environment > config file > default. Every
 * supplied value is checked, including ones a higher-precedence source overrides, so a broken env
 * var or file entry is reported rather than left to bite later.
 */
export const SETTINGS: readonly AnySetting[] = [
  row({
    key: 'model',
    flag: '--model',
    env: 'FLORENCE2_MODEL',
    type: 'path',
    valueName: 'PATH|NAME',
    default: `${HUB_MODEL_PREFIX}${DEFAULT_MODEL}`,
    defaultText: `${DEFAULT_MODEL} (downloaded from the Hub on first use; see florence2 models --help)`,
    doc: 'Florence-2 model folder (config.json, onnx/*.onnx, tokenizer.json), or a Hub model: base, base-ft, large, large-ft or owner/name (taken from the Hugging Face hub cache, HF_HUB_CACHE or $HF_HOME/hub, or downloaded into it). Relative paths in the config file resolve against its folder.',
    parse: modelLocation,
  }),
  row({
    key: 'offline',
    flag: '--offline',
    env: 'FLORENCE2_OFFLINE',
    type: 'boolean',
    valueName: '',
    default: false,
    defaultText: 'false (also on with HF_HUB_OFFLINE=1)',
    doc: 'Never use the network: a Hub model must already be in the cache (florence2 models pull NAME fills it); a model folder is served as is.',
    parse: offlineSwitch,
  }),
  row({
    key: 'host',
    flag: '--host',
    env: 'FLORENCE2_HOST',
    type: 'string',
    valueName: 'HOST',
    default: '0.0.0.0',
    defaultText: '0.0.0.0',
    doc: 'Address the gRPC server binds.',
    parse: nonEmptyString,
  }),
  row({
    key: 'port',
    flag: '--port',
    env: 'FLORENCE2_PORT',
    type: 'integer',
    valueName: 'N',
    default: 50051,
    defaultText: '50051',
    range: '0..65535',
    doc: 'gRPC port; 0 picks a free port (logged on start).',
    parse: integer(0, 65535),
  }),
  row({
    key: 'metricsPort',
    flag: '--metrics-port',
    env: 'FLORENCE2_METRICS_PORT',
    type: 'integer',
    valueName: 'N',
    default: 9464,
    defaultText: '9464',
    range: '-1..65535',
    doc: 'HTTP port for /metrics, /livez and /readyz; 0 picks a free port, -1 disables the endpoint.',
    parse: integer(-1, 65535),
  }),
  row({
    key: 'metricsHost',
    flag: '--metrics-host',
    env: 'FLORENCE2_METRICS_HOST',
    type: 'string',
    valueName: 'HOST',
    default: '0.0.0.0',
    defaultText: '0.0.0.0',
    doc: 'Address the metrics endpoint binds.',
    parse: nonEmptyString,
  }),
  row({
    key: 'httpPort',
    flag: '--http-port',
    env: 'FLORENCE2_HTTP_PORT',
    type: 'integer',
    valueName: 'N',
    default: -1,
    defaultText: '-1 (off)',
    range: '-1..65535',
    doc: 'Port of the HTTP/JSON API (POST /v1/<Rpc> with the proto3 JSON mapping, GET /openapi.json), on --host with the same TLS, tokens and limits as gRPC; 0 picks a free port, -1 turns it off.',
    parse: integer(-1, 65535),
  }),
  row({
    key: 'httpMaxBodyBytes',
    flag: '--http-max-body-bytes',
    env: 'FLORENCE2_HTTP_MAX_BODY_BYTES',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: '0 (auto: --max-message-bytes in base64, plus 64 KiB)',
    range: `0..${2 * GIB - 1}`,
    doc: 'Largest HTTP/JSON request body; a larger one is refused with 413 before it is read.',
    parse: integer(0, 2 * GIB - 1),
  }),
  row({
    key: 'devices',
    flag: '--devices',
    env: 'FLORENCE2_DEVICES',
    type: 'devices',
    valueName: 'LIST',
    default: [{ name: 'cpu:0', provider: 'cpu', deviceId: 0 }],
    defaultText: 'cpu',
    range: 'cpu | cpu:N | cuda:N | tensorrt:N | webgpu, comma-separated',
    doc: 'Device pools, e.g. cuda:0,cuda:1; cpu:0,cpu:1 runs several CPU pools (big CPU hosts, tests).',
    parse: deviceList,
  }),
  row({
    key: 'workersPerDevice',
    flag: '--workers-per-device',
    env: 'FLORENCE2_WORKERS_PER_DEVICE',
    type: 'integer',
    valueName: 'N',
    default: 1,
    defaultText: '1',
    range: '1..64',
    doc: 'Worker threads per device pool; each holds its own copy of the model sessions.',
    parse: integer(1, 64),
  }),
  row({
    key: 'intraOpThreads',
    flag: '--intra-op-threads',
    env: 'FLORENCE2_INTRA_OP_THREADS',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: '0 (auto)',
    range: '0..1024',
    doc: 'onnxruntime intra-op threads per worker; 0 = max(1, floor(cores / (CPU pools × workers per device))) so workers do not oversubscribe cores (all pools count when none is CPU).',
    parse: integer(0, 1024),
  }),
  row({
    key: 'allowCpuFallback',
    flag: '--allow-cpu-fallback',
    env: 'FLORENCE2_ALLOW_CPU_FALLBACK',
    type: 'boolean',
    valueName: '',
    default: false,
    defaultText: 'false',
    doc: 'Run a pool on CPU when its execution provider is unavailable, instead of failing the start.',
    parse: boolean,
  }),
  row({
    key: 'cpuMemoryArena',
    flag: '--cpu-memory-arena',
    env: 'FLORENCE2_CPU_MEMORY_ARENA',
    type: 'boolean',
    valueName: '',
    default: true,
    defaultText: 'true',
    doc: "Keep onnxruntime's CPU memory arena (activation buffers stay allocated between runs). false: 350–470 MiB less per worker on base after a request, the vision encoder 15–25% slower.",
    parse: boolean,
  }),
  row({
    key: 'dtype',
    flag: '--dtype',
    env: 'FLORENCE2_DTYPE',
    type: 'dtype',
    valueName: 'DTYPE',
    default: 'auto',
    defaultText: 'auto',
    range: `auto, ${DTYPES.join('|')}, or module=dtype,... for ${MODULES.join(', ')} (others fp32)`,
    doc: 'ONNX file variant to load, for all modules or per module; auto picks per device kind the measured best variant the folder has.',
    parse: dtypeSpec,
  }),
  row({
    key: 'resample',
    flag: '--resample',
    env: 'FLORENCE2_RESAMPLE',
    type: 'enum',
    valueName: 'FILTER',
    default: 'pil',
    defaultText: 'pil',
    range: 'pil|sharp',
    doc: 'Image resize: pil is bit-exact with the reference preprocessing; sharp uses libvips (within 0.3 grey levels of it on photos, not faster when enlarging).',
    parse: oneOf(['pil', 'sharp'] as const),
  }),
  row({
    key: 'maxImagePixels',
    flag: '--max-image-pixels',
    env: 'FLORENCE2_MAX_IMAGE_PIXELS',
    type: 'integer',
    valueName: 'N',
    default: 50_000_000,
    defaultText: '50000000',
    range: '1..1000000000',
    doc: 'Largest decoded image accepted (width × height); larger ones get INVALID_ARGUMENT.',
    parse: integer(1, 1_000_000_000),
  }),
  row({
    key: 'maxMessageBytes',
    flag: '--max-message-bytes',
    env: 'FLORENCE2_MAX_MESSAGE_BYTES',
    type: 'integer',
    valueName: 'N',
    default: DEFAULT_MAX_MESSAGE_BYTES,
    defaultText: `${DEFAULT_MAX_MESSAGE_BYTES} (50 MiB: a 50 MP JPEG at up to 1 byte per pixel)`,
    // grpc-js takes the limit as a signed 32-bit channel option.
    range: `1024..${2 * GIB - 1}`,
    doc: 'Largest gRPC message received or sent, in bytes; a compressed message counts at its decompressed size.',
    parse: integer(1024, 2 * GIB - 1),
  }),
  row({
    key: 'requestMemoryBytes',
    flag: '--request-memory-bytes',
    env: 'FLORENCE2_REQUEST_MEMORY_BYTES',
    type: 'integer',
    valueName: 'N',
    default: 512 * 1024 * 1024,
    defaultText: '536870912 (512 MiB)',
    range: `1024..${64 * GIB}, at least --max-message-bytes`,
    doc: 'Request bytes held at once, server-wide: decoded requests until answered, and the message size limit for each compressed message being read. Resident memory stays within model + workers + this.',
    parse: integer(1024, 64 * GIB),
  }),
  row({
    key: 'maxInflightPerClient',
    flag: '--max-inflight-per-client',
    env: 'FLORENCE2_MAX_INFLIGHT_PER_CLIENT',
    type: 'integer',
    valueName: 'N',
    default: 64,
    defaultText: '64',
    range: '0..100000 (0 = unlimited)',
    doc: 'Requests of one client (token name, client certificate, else peer address) in flight at once; more get RESOURCE_EXHAUSTED.',
    parse: integer(0, 100_000),
  }),
  row({
    key: 'rateLimitPerClient',
    flag: '--rate-limit-per-client',
    env: 'FLORENCE2_RATE_LIMIT_PER_CLIENT',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: '0 (unlimited)',
    range: '0..1000000',
    doc: 'Requests per second one client may start, on average (token bucket); more get RESOURCE_EXHAUSTED with grpc-retry-pushback-ms.',
    parse: integer(0, 1_000_000),
  }),
  row({
    key: 'rateLimitBurst',
    flag: '--rate-limit-burst',
    env: 'FLORENCE2_RATE_LIMIT_BURST',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: '0 (one second of --rate-limit-per-client)',
    range: '0..1000000',
    doc: 'Requests a client may start at once after idling (the token bucket size).',
    parse: integer(0, 1_000_000),
  }),
  row({
    key: 'maxInFlightPerDevice',
    flag: '--max-in-flight-per-device',
    env: 'FLORENCE2_MAX_IN_FLIGHT_PER_DEVICE',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: '0 (= workers per device)',
    range: '0..1024',
    doc: 'Worker batches running at once per device pool; 0 means one per worker.',
    parse: integer(0, 1024),
  }),
  row({
    key: 'maxBatchRows',
    flag: '--max-batch-rows',
    env: 'FLORENCE2_MAX_BATCH_ROWS',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: `0 (auto: ${AUTO_BATCHING.cpu.maxBatchRows} on CPU, ${AUTO_BATCHING.gpu.maxBatchRows} on a GPU)`,
    range: '0..4096',
    doc: 'Decoder rows per worker batch (a request is prompts × beams rows); 1 turns batching off.',
    parse: integer(0, 4096),
  }),
  row({
    key: 'maxQueueDelayMs',
    flag: '--max-queue-delay-ms',
    env: 'FLORENCE2_MAX_QUEUE_DELAY_MS',
    type: 'integer',
    valueName: 'MS',
    default: -1,
    defaultText: `-1 (auto: ${AUTO_BATCHING.cpu.maxQueueDelayMs} on CPU, ${AUTO_BATCHING.gpu.maxQueueDelayMs} on a GPU)`,
    range: '-1..60000',
    doc: 'How long the oldest waiting request waits for others to join its batch while a worker is free; 0 sends what is waiting at once.',
    parse: integer(-1, 60_000),
  }),
  row({
    key: 'maxVisionBatch',
    flag: '--max-vision-batch',
    env: 'FLORENCE2_MAX_VISION_BATCH',
    type: 'integer',
    valueName: 'N',
    default: 0,
    defaultText: `0 (auto: ${AUTO_BATCHING.cpu.maxVisionBatch} on CPU, ${AUTO_BATCHING.gpu.maxVisionBatch} on a GPU)`,
    range: '0..1024',
    doc: "Images per vision-encoder call within a batch, to bound the encoder's memory.",
    parse: integer(0, 1024),
  }),
  row({
    key: 'maxQueuePerDevice',
    flag: '--max-queue-per-device',
    env: 'FLORENCE2_MAX_QUEUE_PER_DEVICE',
    type: 'integer',
    valueName: 'N',
    default: 16,
    defaultText: '16',
    range: '0..100000',
    doc: 'Requests waiting per device pool beyond those in flight; more get RESOURCE_EXHAUSTED.',
    parse: integer(0, 100_000),
  }),
  row({
    key: 'maxNumBeams',
    flag: '--max-num-beams',
    env: 'FLORENCE2_MAX_NUM_BEAMS',
    type: 'integer',
    valueName: 'N',
    default: 8,
    defaultText: '8',
    range: '1..16',
    doc: 'Largest num_beams a request may ask for.',
    parse: integer(1, 16),
  }),
  row({
    key: 'maxNewTokens',
    flag: '--max-new-tokens',
    env: 'FLORENCE2_MAX_NEW_TOKENS',
    type: 'integer',
    valueName: 'N',
    default: 1024,
    defaultText: '1024',
    range: '1..4096',
    doc: 'Largest max_new_tokens a request may ask for.',
    parse: integer(1, 4096),
  }),
  row({
    key: 'maxTextChars',
    flag: '--max-text-chars',
    env: 'FLORENCE2_MAX_TEXT_CHARS',
    type: 'integer',
    valueName: 'N',
    default: 2000,
    defaultText: '2000',
    range: '1..1000000',
    doc: 'Longest text input (phrase, expression, class name), in characters.',
    parse: integer(1, 1_000_000),
  }),
  row({
    key: 'maxClasses',
    flag: '--max-classes',
    env: 'FLORENCE2_MAX_CLASSES',
    type: 'integer',
    valueName: 'N',
    default: 32,
    defaultText: '32',
    range: '1..1000',
    doc: 'Most classes in one open-vocabulary detection request.',
    parse: integer(1, 1000),
  }),
  row({
    key: 'maxRequestMs',
    flag: '--max-request-ms',
    env: 'FLORENCE2_MAX_REQUEST_MS',
    type: 'integer',
    valueName: 'MS',
    default: 300_000,
    defaultText: '300000 (5 minutes)',
    range: '0..86400000 (0 = no bound)',
    doc: 'Longest a request may take when its client sets no deadline or a later one; then DEADLINE_EXCEEDED.',
    parse: integer(0, 86_400_000),
  }),
  row({
    key: 'maxRequestTokens',
    flag: '--max-request-tokens',
    env: 'FLORENCE2_MAX_REQUEST_TOKENS',
    type: 'integer',
    valueName: 'N',
    default: 98_304,
    defaultText: '98304 (32 classes × 3 beams × 1024 tokens)',
    range: '1..100000000',
    doc: 'Most decoder rows × max_new_tokens one request may ask for (rows = prompts × beams); more get INVALID_ARGUMENT.',
    parse: integer(1, 100_000_000),
  }),
  row({
    key: 'tlsCert',
    flag: '--tls-cert',
    env: 'FLORENCE2_TLS_CERT',
    type: 'path',
    valueName: 'FILE',
    default: null,
    defaultText: 'none (plaintext)',
    doc: 'PEM certificate chain: the gRPC port serves TLS (with --tls-key). Reloaded when the file changes and on SIGHUP.',
    parse: filePath,
  }),
  row({
    key: 'tlsKey',
    flag: '--tls-key',
    env: 'FLORENCE2_TLS_KEY',
    type: 'path',
    valueName: 'FILE',
    default: null,
    defaultText: 'none',
    doc: 'PEM private key of --tls-cert.',
    parse: filePath,
  }),
  row({
    key: 'tlsClientCa',
    flag: '--tls-client-ca',
    env: 'FLORENCE2_TLS_CLIENT_CA',
    type: 'path',
    valueName: 'FILE',
    default: null,
    defaultText: 'none',
    doc: 'PEM CA bundle: clients must present a certificate it signed (mTLS). Needs --tls-cert.',
    parse: filePath,
  }),
  row({
    key: 'authTokensFile',
    flag: '--auth-tokens-file',
    env: 'FLORENCE2_AUTH_TOKENS_FILE',
    type: 'path',
    valueName: 'FILE',
    default: null,
    defaultText: 'none',
    doc: 'Bearer tokens, one per line, optionally followed by a client name (for per-client limits and logs); calls without a known token get UNAUTHENTICATED, health stays open. Reloaded on SIGHUP.',
    parse: filePath,
  }),
  row({
    key: 'reflection',
    flag: '--reflection',
    env: 'FLORENCE2_REFLECTION',
    type: 'enum',
    valueName: 'MODE',
    default: 'auto',
    defaultText: 'auto (on unless --auth-tokens-file is set)',
    range: 'auto|on|off',
    doc: 'gRPC server reflection.',
    parse: oneOf(['auto', 'on', 'off'] as const),
  }),
  row({
    key: 'maxConnectionAgeMs',
    flag: '--max-connection-age-ms',
    env: 'FLORENCE2_MAX_CONNECTION_AGE_MS',
    type: 'integer',
    valueName: 'MS',
    default: 0,
    defaultText: '0 (no limit)',
    // Under a second would make clients reconnect all the time; a day keeps grpc-js's timer (with its
    // 10% jitter) far below the 2^31 ms setTimeout limit.
    range: '0, or 1000..86400000',
    doc: 'Longest a client connection lives; then the server sends GOAWAY and the client reconnects (calls in flight go on), so clients balancing over replicas (dns:/// with round_robin) resolve again and new replicas get load. Give it minutes when several replicas serve.',
    parse: offOrInteger(1000, 86_400_000),
  }),
  row({
    key: 'maxConnectionAgeGraceMs',
    flag: '--max-connection-age-grace-ms',
    env: 'FLORENCE2_MAX_CONNECTION_AGE_GRACE_MS',
    type: 'integer',
    valueName: 'MS',
    default: 0,
    defaultText: '0 (calls run to their end)',
    range: '0..86400000; needs --max-connection-age-ms',
    doc: 'After a connection reached its maximum age, how long the calls still on it may go on before it is closed (they then fail UNAVAILABLE). Longer than --max-request-ms cuts no unary call, only Streams held open.',
    parse: integer(0, 86_400_000),
  }),
  row({
    key: 'shutdownGraceMs',
    flag: '--shutdown-grace-ms',
    env: 'FLORENCE2_SHUTDOWN_GRACE_MS',
    type: 'integer',
    valueName: 'MS',
    default: 30_000,
    defaultText: '30000',
    range: '0..3600000',
    doc: 'On SIGTERM, how long in-flight and queued work may finish before the server closes.',
    parse: integer(0, 3_600_000),
  }),
  row({
    key: 'logLevel',
    flag: '--log-level',
    env: 'FLORENCE2_LOG_LEVEL',
    type: 'enum',
    valueName: 'LEVEL',
    default: 'info',
    defaultText: 'info',
    range: LOG_LEVELS.join('|'),
    doc: 'Minimum level of the JSON log lines on stderr.',
    parse: oneOf(LOG_LEVELS),
  }),
  row({
    key: 'logFormat',
    flag: '--log-format',
    env: 'FLORENCE2_LOG_FORMAT',
    type: 'enum',
    valueName: 'FORMAT',
    default: 'auto',
    defaultText: 'auto (pretty when stderr is a terminal, else JSON lines)',
    range: LOG_FORMATS.join('|'),
    doc: 'How log lines are written: JSON lines (for collectors) or pretty text (for a terminal).',
    parse: oneOf(LOG_FORMATS),
  }),
  row({
    key: 'tracing',
    flag: '--tracing',
    env: 'FLORENCE2_TRACING',
    type: 'enum',
    valueName: 'MODE',
    default: 'auto',
    defaultText: 'auto (on when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT or OTEL_TRACES_EXPORTER=otlp is set)',
    range: TRACING_MODES.join('|'),
    doc: 'OpenTelemetry traces of every request and its stages, exported with OTLP (endpoint, protocol, headers and sampler from the standard OTEL_* variables). OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn auto off.',
    parse: oneOf(TRACING_MODES),
  }),
  row({
    key: 'configFile',
    flag: '--config',
    env: 'FLORENCE2_CONFIG',
    type: 'path',
    valueName: 'FILE',
    default: null,
    defaultText: 'none',
    doc: 'JSON file of settings keyed by their camelCase names (e.g. {"port": 50051, "devices": ["cuda:0"]}).',
    parse: filePath,
  }),
  row({
    key: 'testHooks',
    flag: '--test-hooks',
    env: 'FLORENCE2_TEST_HOOKS',
    type: 'boolean',
    valueName: '',
    default: false,
    defaultText: 'false',
    doc: 'Test-only behaviour (a request may ask its worker to crash). Never enable in production.',
    hidden: true,
    parse: boolean,
  }),
];

/** The table by key. */
export const SETTINGS_BY_KEY: Readonly<Record<SettingKey, AnySetting>> = Object.freeze(
  Object.fromEntries(SETTINGS.map((s) => [s.key, s])) as Record<SettingKey, AnySetting>,
);
