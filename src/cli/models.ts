/** `florence2 models pull|list|path|rm`: manage Florence-2 models in the Hugging Face hub cache. */
import { PROVIDERS, isProvider } from '../runtime/model-files';
import {
  type CachedModel,
  type DownloadProgress,
  type DtypeByModule,
  HubError,
  MODEL_ALIASES,
  OfflineError,
  hubSettings,
  listModels,
  modelPath,
  parseDtypeArg,
  removeModel,
  repoId,
  resolveModel,
} from '../hub';
import { EXIT } from './exit-codes';

/** Where the command writes; defaults to the process's streams (tests pass their own). */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

const NAMES = `NAME is ${Object.keys(MODEL_ALIASES).join(', ')} (onnx-community/Florence-2-*) or a Hub repository id owner/name.`;

const ENVIRONMENT = `Environment:
  HF_HUB_CACHE                       the Hugging Face hub cache, shared with Python tools (default $HF_HOME/hub,
                                     HF_HOME defaulting to ~/.cache/huggingface)
  HF_ENDPOINT                        Hub endpoint (default https://huggingface.co)
  HF_TOKEN                           access token for private or gated repositories (sent to HF_ENDPOINT only)
  FLORENCE2_OFFLINE, HF_HUB_OFFLINE  1 = offline: never use the network`;

const EXIT_CODES = `Exit codes:
  0  success
  1  failure: network or HTTP error, checksum mismatch, model not cached (path, rm), download lock held
  2  usage error
  3  offline mode and the model is not cached`;

const USAGE = `Usage: florence2 models <command> [options]

Commands:
  pull NAME   download a model into the cache (resumes an interrupted download)
  list        list cached models
  path NAME   print the folder of a cached model
  rm NAME     delete a model from the cache

${NAMES}
Run florence2 models <command> --help for a command's options.

${ENVIRONMENT}

${EXIT_CODES}
`;

const HELP: Record<string, string> = {
  pull: `Usage: florence2 models pull NAME [--revision R] [--dtype D | --dtype module=d,...] [--device P] [--offline]

Downloads the model's configs, tokenizer and one ONNX file per module into the cache, then prints the
snapshot folder on stdout (progress goes to stderr). Files land in the Hugging Face hub cache
(blobs, snapshots, refs, as Python's huggingface_hub lays them out), are resumed with HTTP Range
after an interruption and checked against the size and sha256 the Hub states; each appears only
complete. A model already cached, by florence2 or a Python tool, is not fetched again.

${NAMES}

Options:
  --revision R   branch, tag or commit (default main)
  --dtype D      auto (default), an ONNX variant of every module (fp32, fp16, q8, int8, uint8, q4,
                 q4f16, bnb4), or module=dtype,... with modules vision_encoder, embed_tokens,
                 encoder_model, decoder_model_merged (modules not named: fp32). auto takes per
                 module the measured best variant for --device that the repository has: on cpu
                 int8, then q8, uint8, fp32; on cuda/tensorrt/webgpu fp16 vision_encoder and
                 embed_tokens, fp32 language model
  --device P     the execution provider auto chooses for: cpu (default), cuda, tensorrt, webgpu
  --offline      do not use the network (only checks the cache)
  -h, --help     this help

${ENVIRONMENT}

${EXIT_CODES}
`,
  list: `Usage: florence2 models list [--json]

Lists the cached models (complete folders, and interrupted downloads marked partial).

Options:
  --json       one JSON array (name, repo, revision, commit, dir, state, bytes, files, dtypes, completedAt)
  -h, --help   this help

${ENVIRONMENT}

${EXIT_CODES}
`,
  path: `Usage: florence2 models path NAME [--revision R]

Prints the folder of a cached model (for florence2 serve --model), or exits 1 when it is not cached.

${NAMES}

Options:
  --revision R   branch, tag or commit (default main)
  -h, --help     this help

${ENVIRONMENT}

${EXIT_CODES}
`,
  rm: `Usage: florence2 models rm NAME [--revision R]

Deletes a model from the cache: every revision (and interrupted download), or only --revision R.
Exits 1 when nothing was cached or another process is downloading it.

${NAMES}

Options:
  --revision R   only this revision
  -h, --help     this help

${ENVIRONMENT}

${EXIT_CODES}
`,
};

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  values: Record<string, string>;
  flags: Set<string>;
}

/** Parses `--key value`, `--key=value` and boolean flags; anything else unknown is a usage error. */
function parseArgs(argv: string[], valued: string[], booleans: string[]): Parsed {
  const out: Parsed = { positional: [], values: {}, flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq < 0 ? a : a.slice(0, eq);
    if (valued.includes(key)) {
      const v = eq < 0 ? argv[++i] : a.slice(eq + 1);
      if (v === undefined || v === '') throw new UsageError(`${key} needs a value`);
      if (key in out.values) throw new UsageError(`${key} is given twice`);
      out.values[key] = v;
    } else if (booleans.includes(key) && eq < 0) {
      out.flags.add(key);
    } else {
      throw new UsageError(`unknown option ${JSON.stringify(a)}`);
    }
  }
  return out;
}

const isHelp = (argv: string[]) => argv.includes('--help') || argv.includes('-h');

/** Bytes in decimal units, as download sizes are usually shown. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/**
 * Shows download progress on stderr: a redrawn bar on a terminal, else a line per file start and end
 * plus one every 10 s (logs of CI jobs and containers stay readable).
 */
export class ProgressReporter {
  private lastDraw = 0;
  private lastLine = 0;
  private drawn = false;
  private readonly startedAt: number;

  constructor(
    private readonly stream: CliIo['stderr'],
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  update(p: DownloadProgress): void {
    const t = this.now();
    if (this.stream.isTTY) {
      if (p.event === 'progress' && t - this.lastDraw < 100) return;
      this.lastDraw = t;
      this.draw(p, t);
      return;
    }
    const size = p.fileTotal === null ? '' : ` (${formatBytes(p.fileTotal)})`;
    if (p.event === 'start') {
      this.lastLine = t;
      this.stream.write(
        `[${p.fileIndex + 1}/${p.fileCount}] ${p.file}${size}${p.fileBytes > 0 ? `, resuming at ${formatBytes(p.fileBytes)}` : ''}\n`,
      );
    } else if (p.event === 'done') {
      this.stream.write(`[${p.fileIndex + 1}/${p.fileCount}] ${p.file} done\n`);
    } else if (t - this.lastLine >= 10_000) {
      this.lastLine = t;
      this.stream.write(`[${p.fileIndex + 1}/${p.fileCount}] ${p.file}: ${this.amount(p)}\n`);
    }
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  private amount(p: DownloadProgress): string {
    const total = p.total ?? null;
    const pct = total ? ` ${((100 * p.bytes) / total).toFixed(0)}%` : '';
    return `${formatBytes(p.bytes)}${total === null ? '' : ` of ${formatBytes(total)}`}${pct}`;
  }

  private draw(p: DownloadProgress, t: number): void {
    const width = Math.max(10, Math.min(30, (this.stream.columns ?? 80) - 60));
    const frac = p.total ? Math.min(1, p.bytes / p.total) : 0;
    const filled = Math.round(frac * width);
    const seconds = Math.max(0.001, (t - this.startedAt) / 1000);
    const rate = `${formatBytes(Math.round(p.bytes / seconds))}/s`;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.amount(p)} ${rate} ${p.fileIndex + 1}/${p.fileCount} ${p.file}`;
    this.stream.write(`\r\x1b[2K${bar.slice(0, Math.max(20, (this.stream.columns ?? 120) - 1))}`);
    this.drawn = true;
  }
}

function describe(d: Partial<Record<string, readonly string[]>>): string {
  return Object.entries(d)
    .map(([m, ds]) => `${m}=${(ds ?? []).join('+')}`)
    .join(',');
}

async function pull(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const a = parseArgs(argv, ['--revision', '--dtype', '--device'], ['--offline']);
  if (a.positional.length !== 1)
    throw new UsageError(a.positional.length === 0 ? 'pull needs a model NAME' : `unexpected argument ${JSON.stringify(a.positional[1])}`);
  const device = a.values['--device'];
  if (device !== undefined && !isProvider(device))
    throw new UsageError(`--device must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(device)}`);
  let dtype: DtypeByModule | 'auto' | undefined;
  try {
    repoId(a.positional[0]);
    dtype = a.values['--dtype'] === undefined ? undefined : parseDtypeArg(a.values['--dtype']);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const reporter = new ProgressReporter(io.stderr);
  try {
    const r = await resolveModel({
      name: a.positional[0],
      revision: a.values['--revision'],
      dtype,
      device,
      offline: a.flags.has('--offline') || undefined,
      env,
      onProgress: (p) => reporter.update(p),
    });
    reporter.finish();
    io.stderr.write(
      `${r.downloaded ? 'pulled' : 'already cached:'} ${r.repo} (revision ${r.revision}, commit ${r.commit.slice(0, 12)}, dtype ${describe(Object.fromEntries(Object.entries(r.dtype).map(([m, d]) => [m, [d]])))})\n`,
    );
    io.stdout.write(`${r.dir}\n`);
    return EXIT.ok;
  } finally {
    reporter.finish();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

async function list(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const a = parseArgs(argv, [], ['--json']);
  if (a.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(a.positional[0])}`);
  const models: CachedModel[] = await listModels(hubSettings(env).cacheDir);
  if (a.flags.has('--json')) {
    io.stdout.write(`${JSON.stringify(models, null, 2)}\n`);
    return EXIT.ok;
  }
  if (models.length === 0) {
    io.stderr.write(`no models in ${hubSettings(env).cacheDir} (florence2 models pull base-ft)\n`);
    return EXIT.ok;
  }
  const rows = [['NAME', 'REVISION', 'COMMIT', 'STATE', 'SIZE', 'DTYPES', 'PATH']];
  for (const m of models)
    rows.push([m.name, m.revision, (m.commit ?? '-').slice(0, 12), m.state, formatBytes(m.bytes), describe(m.dtypes) || '-', m.dir]);
  io.stdout.write(table(rows));
  return EXIT.ok;
}

async function path(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const a = parseArgs(argv, ['--revision'], []);
  if (a.positional.length !== 1)
    throw new UsageError(a.positional.length === 0 ? 'path needs a model NAME' : `unexpected argument ${JSON.stringify(a.positional[1])}`);
  const name = a.positional[0];
  try {
    repoId(name);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const dir = await modelPath(name, hubSettings(env).cacheDir, a.values['--revision']);
  if (dir === null) {
    io.stderr.write(
      `florence2 models path: ${name} is not in the cache (florence2 models pull ${name}${a.values['--revision'] ? ` --revision ${a.values['--revision']}` : ''})\n`,
    );
    return EXIT.failure;
  }
  io.stdout.write(`${dir}\n`);
  return EXIT.ok;
}

async function rm(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const a = parseArgs(argv, ['--revision'], []);
  if (a.positional.length !== 1)
    throw new UsageError(a.positional.length === 0 ? 'rm needs a model NAME' : `unexpected argument ${JSON.stringify(a.positional[1])}`);
  const name = a.positional[0];
  try {
    repoId(name);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const removed = await removeModel(name, hubSettings(env).cacheDir, a.values['--revision']);
  if (removed.length === 0) {
    io.stderr.write(
      `florence2 models rm: ${name}${a.values['--revision'] ? ` (revision ${a.values['--revision']})` : ''} is not in the cache\n`,
    );
    return EXIT.failure;
  }
  for (const d of removed) io.stdout.write(`removed ${d}\n`);
  return EXIT.ok;
}

const COMMANDS: Record<string, (argv: string[], env: NodeJS.ProcessEnv, io: CliIo) => Promise<number>> = { pull, list, path, rm };

/** Runs `florence2 models ...`; returns the exit code (see {@link EXIT}). */
export async function models(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout).write(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    io.stderr.write(`florence2 models: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (isHelp(rest)) {
    io.stdout.write(HELP[command]);
    return EXIT.ok;
  }
  try {
    return await run(rest, env, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`florence2 models ${command}: ${err.message}\n\n${HELP[command]}`);
      return EXIT.usage;
    }
    if (err instanceof OfflineError) {
      io.stderr.write(`florence2 models ${command}: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof HubError) {
      io.stderr.write(`florence2 models ${command}: ${err.message}\n`);
      return EXIT.failure;
    }
    io.stderr.write(`florence2 models ${command}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failure;
  }
}
