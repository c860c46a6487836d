/**
 * Reads the server configuration once, from flags, `FLORENCE2_*` environment variables and an
 * optional JSON file, against the table in `schema.ts`. Every problem is collected and reported in
 * one `ConfigError`, so a bad deployment is fixed in one round trip instead of one error per restart.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { SETTINGS, SETTINGS_BY_KEY, shown, type AnySetting, type Config, type ParseContext, type SettingKey } from './schema';

export type { Config, DeviceSpec, DtypeByModule, Provider } from './schema';

/** The configuration is invalid; `problems` lists every problem found, each naming its source. */
export class ConfigError extends Error {
  /** One line per problem, e.g. "--port: must be an integer in [0, 65535], got 'abc'". */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/** Options for {@link loadConfig}, mainly so tests can pin machine-dependent inputs. */
export interface LoadOptions {
  /** Logical cores used to size `intraOpThreads` when it is 0 (auto); default `os.availableParallelism()`. */
  availableParallelism?: number;
  /** Folder relative paths in flags and env vars resolve against; default `process.cwd()`. */
  cwd?: string;
}

/** A raw value and where it came from. */
interface Supplied {
  /** Names the source in messages: `--port`, `FLORENCE2_PORT`, `config file /x.json: port`. */
  source: string;
  raw: unknown;
  ctx: ParseContext;
}

/** True when argv asks for help (`--help` or `-h` before any `--`). */
export function isHelpRequested(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}

/** Levenshtein distance, for "did you mean" hints on misspelt flags and file keys. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function didYouMean(name: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  // A third of the name keeps hints useful without suggesting unrelated settings.
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean ${best}?)` : '';
}

const visible = SETTINGS.filter((s) => !s.hidden);

/** Reads flags: `--name value`, `--name=value`, `--flag` / `--no-flag` for booleans. The last occurrence wins. */
function readArgv(argv: readonly string[], ctx: ParseContext, problems: string[]): Map<SettingKey, Supplied> {
  const byFlag = new Map<string, AnySetting>(SETTINGS.map((s) => [s.flag, s]));
  const flagNames = visible.flatMap((s) => (s.type === 'boolean' ? [s.flag, `--no-${s.flag.slice(2)}`] : [s.flag]));
  const out = new Map<SettingKey, Supplied>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') continue; // the caller handles help before loading
    if (arg === '--') {
      const rest = argv.slice(i + 1);
      if (rest.length > 0) problems.push(`unexpected argument${rest.length === 1 ? '' : 's'} ${rest.map(shown).join(' ')}`);
      break;
    }
    if (!arg.startsWith('--') && !/^-[A-Za-z]/.test(arg)) {
      problems.push(`unexpected argument ${shown(arg)} (settings are --name value or --name=value)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    let setting = byFlag.get(name);
    let negated = false;
    if (!setting && name.startsWith('--no-')) {
      const positive = byFlag.get(`--${name.slice(5)}`);
      if (positive?.type === 'boolean') [setting, negated] = [positive, true];
    }
    if (!setting) {
      problems.push(`unknown flag ${name}${didYouMean(name, flagNames)}`);
      // Its value, if it has one, would otherwise be reported again as a stray argument.
      if (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) i++;
      continue;
    }
    if (setting.type === 'boolean') {
      // A boolean flag never takes the next argument, so `--allow-cpu-fallback --port 1` stays unambiguous.
      if (negated && inline !== undefined) problems.push(`${name}: takes no value, got ${shown(inline)}`);
      else out.set(setting.key, { source: name, raw: negated ? false : (inline ?? true), ctx });
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // Values may start with '-' (`--metrics-port -1`), but not with '--': that is the next flag.
      if (next === undefined || next.startsWith('--')) {
        problems.push(`${name}: missing value (${name} ${setting.valueName})`);
        continue;
      }
      value = next;
      i++;
    }
    out.set(setting.key, { source: name, raw: value, ctx });
  }
  return out;
}

/** Reads `FLORENCE2_*` variables named in the table. An empty variable counts as unset (as compose files leave them). */
function readEnv(env: NodeJS.ProcessEnv, ctx: ParseContext): Map<SettingKey, Supplied> {
  const out = new Map<SettingKey, Supplied>();
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw !== undefined && raw.trim() !== '') out.set(s.key, { source: s.env, raw, ctx });
  }
  return out;
}

/** Reads the JSON config file: an object keyed by camelCase setting names. `null` values count as unset. */
function readFile(path: string, source: string, problems: string[]): Map<SettingKey, Supplied> {
  const out = new Map<SettingKey, Supplied>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${source}: cannot read ${shown(path)}: ${(err as Error).message}`);
    return out;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    problems.push(`config file ${path}: invalid JSON: ${(err as Error).message}`);
    return out;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    problems.push(`config file ${path}: must be a JSON object of settings, got ${Array.isArray(data) ? 'an array' : shown(data)}`);
    return out;
  }
  const ctx: ParseContext = { baseDir: dirname(path) };
  const keys = visible.filter((s) => s.key !== 'configFile').map((s) => s.key);
  for (const [key, raw] of Object.entries(data)) {
    if (key === 'configFile') problems.push(`config file ${path}: configFile cannot be set inside a config file`);
    else if (!Object.prototype.hasOwnProperty.call(SETTINGS_BY_KEY, key))
      problems.push(`config file ${path}: unknown key ${shown(key)}${didYouMean(key, keys)}`);
    else if (raw !== null) out.set(key as SettingKey, { source: `config file ${path}: ${key}`, raw, ctx });
  }
  return out;
}

/** Marks a setting whose winning value was invalid, so cross-field rules skip it. */
const INVALID: unique symbol = Symbol('invalid');

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Loads and validates the configuration. Precedence per setting: flag > env > file > default.
 * Every supplied value is checked (also ones overridden by a higher-precedence source).
 * @param argv the arguments after `serve` (e.g. `process.argv.slice(3)`)
 * @param env the environment (`process.env`); only the `FLORENCE2_*` names in the table are read
 * @throws ConfigError listing every problem
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, options: LoadOptions = {}): Config {
  const problems: string[] = [];
  const ctx: ParseContext = { baseDir: options.cwd ?? process.cwd() };

  // 1) flags and environment
  const fromFlags = readArgv(argv, ctx, problems);
  const fromEnv = readEnv(env, ctx);

  // 2) the config file, named by flag or env (it cannot name itself)
  let configFile: string | null = null;
  let fromFile = new Map<SettingKey, Supplied>();
  const configSetting = SETTINGS_BY_KEY.configFile;
  for (const sup of [fromFlags.get('configFile'), fromEnv.get('configFile')]) {
    if (!sup) continue;
    const r = configSetting.parse(sup.raw, sup.ctx);
    if (!r.ok) problems.push(`${sup.source}: ${r.error}`);
    else if (configFile === null) {
      configFile = r.value as string;
      fromFile = readFile(configFile, sup.source, problems);
    }
  }

  // 3) each setting: check every supplied value, keep the highest-precedence one
  const values: Record<string, unknown> = { configFile };
  const sourceOf: Partial<Record<SettingKey, string>> = {};
  for (const s of SETTINGS) {
    if (s.key === 'configFile') continue;
    let chosen: unknown = undefined;
    for (const sup of [fromFlags.get(s.key), fromEnv.get(s.key), fromFile.get(s.key)]) {
      if (!sup) continue;
      const r = s.parse(sup.raw, sup.ctx);
      if (!r.ok) problems.push(`${sup.source}: ${r.error}`);
      if (chosen === undefined) {
        chosen = r.ok ? r.value : INVALID;
        sourceOf[s.key] = sup.source;
      }
    }
    if (chosen === undefined) {
      if (s.default === undefined)
        problems.push(`${s.key}: required; set ${s.flag} ${s.valueName}, ${s.env}, or "${s.key}" in the config file`);
      chosen = s.default === undefined ? INVALID : s.default;
      sourceOf[s.key] = `${s.flag} (default)`;
    }
    values[s.key] = chosen;
  }

  // 4) cross-field rules, only between values that are themselves valid
  const { port, metricsPort, httpPort } = values;
  if (typeof port === 'number' && port === metricsPort && port !== 0) {
    problems.push(`${sourceOf.port} and ${sourceOf.metricsPort}: the gRPC port and the metrics port must differ, both are ${port}`);
  }
  if (typeof httpPort === 'number' && httpPort > 0 && (httpPort === port || httpPort === metricsPort)) {
    const other = httpPort === port ? 'port' : 'metricsPort';
    problems.push(
      `${sourceOf.httpPort} and ${sourceOf[other]}: the HTTP/JSON port must differ from the ${other === 'port' ? 'gRPC' : 'metrics'} port, both are ${httpPort}`,
    );
  }

  const { maxConnectionAgeMs, maxConnectionAgeGraceMs } = values;
  if (maxConnectionAgeMs === 0 && typeof maxConnectionAgeGraceMs === 'number' && maxConnectionAgeGraceMs > 0) {
    problems.push(
      `${sourceOf.maxConnectionAgeGraceMs}: a grace for aged connections has no effect without a maximum age (--max-connection-age-ms is 0)`,
    );
  }

  const { maxMessageBytes, requestMemoryBytes, tlsCert, tlsKey, tlsClientCa } = values;
  if (typeof maxMessageBytes === 'number' && typeof requestMemoryBytes === 'number' && requestMemoryBytes < maxMessageBytes) {
    problems.push(
      `${sourceOf.requestMemoryBytes}: the request memory budget (${requestMemoryBytes}) must hold at least one message of --max-message-bytes (${maxMessageBytes})`,
    );
  }
  if ((tlsCert === null) !== (tlsKey === null) && tlsCert !== INVALID && tlsKey !== INVALID) {
    problems.push(`${tlsCert === null ? sourceOf.tlsKey : sourceOf.tlsCert}: --tls-cert and --tls-key go together`);
  }
  if (tlsClientCa !== null && tlsClientCa !== INVALID && tlsCert === null) {
    problems.push(`${sourceOf.tlsClientCa}: --tls-client-ca (mTLS) needs --tls-cert and --tls-key`);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  // 5) resolve the "0 = auto" settings
  const config = values as unknown as { -readonly [K in keyof Config]: Config[K] };
  if (config.intraOpThreads === 0) {
    const cores = options.availableParallelism ?? availableParallelism();
    const cpuPools = config.devices.filter((d) => d.provider === 'cpu').length;
    // GPU pools still run some ops and pre/post-processing on CPU, so with no CPU pool all pools share the cores.
    const pools = cpuPools > 0 ? cpuPools : config.devices.length;
    config.intraOpThreads = Math.max(1, Math.floor(cores / (pools * config.workersPerDevice)));
  }
  if (config.maxInFlightPerDevice === 0) config.maxInFlightPerDevice = config.workersPerDevice;
  // base64 takes 4 bytes per 3; the rest of a request (options, texts, keys) fits in 64 KiB.
  if (config.httpMaxBodyBytes === 0) config.httpMaxBodyBytes = Math.ceil(config.maxMessageBytes / 3) * 4 + 64 * 1024;

  // Defaults are shared objects from the table; copy before freezing so the result owns its data.
  config.devices = config.devices.map((d) => ({ ...d }));
  config.dtype = config.dtype === 'auto' ? 'auto' : { ...config.dtype };
  return deepFreeze(config);
}

/** Wraps `text` at `width` columns with `indent`. */
function wrap(text: string, indent: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

/** `florence2 serve --help`, generated from the settings table (hidden settings left out). */
export function helpText(): string {
  const out: string[] = [
    'Usage: florence2 serve [--model PATH|NAME] [options]',
    '',
    wrap('Serves Microsoft Florence-2 over gRPC, with Prometheus metrics and health probes on a separate HTTP port.', ''),
    '',
    wrap(
      'Each setting is read from, highest precedence first: its flag (--name value or --name=value), its ' +
        'environment variable (an empty variable counts as unset), the JSON config file given by --config ' +
        '(keys are the camelCase names shown as "file"), then its default. All problems are reported together.',
      '',
    ),
    '',
    'Options:',
  ];
  for (const s of visible) {
    const head = s.type === 'boolean' ? `${s.flag}, --no-${s.flag.slice(2)}` : `${s.flag} ${s.valueName}`;
    const facts = [
      `env ${s.env}`,
      s.key === 'configFile' ? null : `file "${s.key}"`,
      s.default === undefined ? 'required' : `default ${s.defaultText}`,
    ];
    out.push(`  ${head}`, wrap(s.doc, '      '), wrap(facts.filter((f) => f !== null).join(' · '), '      '));
    if (s.range) out.push(wrap(`values ${s.range}`, '      '));
  }
  out.push('  -h, --help', '      Show this help and exit.', '');
  return out.join('\n');
}
