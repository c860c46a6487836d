/**
 * `florence2 predict`: run one task on images (files or folders) against a running server, print
 * readable text or one JSON document, and optionally save the results drawn on the images.
 *
 * Exit codes scripts can rely on: 0 every image succeeded, 1 some image failed (the others were
 * still processed), 2 usage error, 3 server unreachable (or not a Florence-2 server).
 */
import { EXIT } from './exit-codes';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Florence2Client, Florence2Error } from 'florence2-client';
import { requestForTask, resolveTask, TASK_INPUT, TASK_NAMES, type TaskInputs, type TaskToken } from 'florence2-client';
import type { CredentialsInput } from 'florence2-client';
import type { Box, GenerationOptions, Region, ResponseMeta, TaskResult } from 'florence2-client';
import { drawResult } from '../visuals/draw';
import { visualsFromResult } from '../visuals/instances';

/** File extensions a folder argument expands to. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'];

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_DEADLINE_MS = 300_000;
const PROBE_DEADLINE_MS = 10_000;
/** A server loading a real model from disk and warming up can take a minute before it serves. */
const DEFAULT_WAIT_MS = 60_000;
const WAIT_POLL_MS = 250;

const USAGE = `Usage: florence2 predict --server HOST:PORT --task TASK [options] IMAGE|FOLDER...

Runs one Florence-2 task on each image (a folder means its ${IMAGE_EXTENSIONS.map((e) => e.slice(1)).join(', ')} files,
sorted by name) against a running florence2 server.

Options:
  --server HOST:PORT       the server (default: $FLORENCE2_SERVER); for a fleet, dns:///NAME:PORT
                           or ipv4:ADDR:PORT,ADDR:PORT spreads the images round-robin
  --task TASK              a task token such as '<OD>', or one of:
                             ${Object.keys(TASK_NAMES).join(', ')}
  --text T                 the caption (phrase-grounding) or expression (referring-segmentation)
  --classes a,b            the classes to find (open-vocabulary)
  --region x1,y1,x2,y2     the region in pixels (region-segmentation, region-category,
                           region-description, region-ocr)
  --beams N                beam width (default: the model's)
  --max-new-tokens N       upper bound on generated tokens (default: the server's)
  --json                   print one JSON document {results, failures} instead of text
                           (timings in ms to 3 significant digits)
  --raw-text               also give the model's decoded output (meta.rawText in --json)
  --save-visuals DIR       write DIR/<image name>.png with the result drawn on the image
  --concurrency N          images in flight at once (default ${DEFAULT_CONCURRENCY})
  --deadline-ms N          deadline per image, retries included (default ${DEFAULT_DEADLINE_MS})
  --wait-ms N              wait up to N ms for a server that is still loading its model to report
                           SERVING (default ${DEFAULT_WAIT_MS}; 0 = do not wait)
  --tls                    connect with TLS (system roots)
  --ca FILE                connect with TLS, trusting this CA certificate (PEM)
  --token TOKEN            bearer token for a server with --auth-tokens-file (default: $FLORENCE2_TOKEN)
  --no-progress            no progress on stderr
  -h, --help               this help

Exit codes: 0 all images succeeded, 1 some image failed (the rest were processed),
2 usage error, 3 server unreachable.
`;

/** Where predict writes; the process streams by default (tests pass their own). */
export interface PredictIo {
  stdout: Writable;
  stderr: Writable;
}
interface Writable {
  write(text: string, callback?: (err?: Error | null) => void): unknown;
  isTTY?: boolean;
}

class UsageError extends Error {}

interface Settings {
  server: string;
  task: TaskToken;
  inputs: TaskInputs;
  generation: GenerationOptions;
  json: boolean;
  saveVisuals: string | undefined;
  concurrency: number;
  deadlineMs: number;
  waitMs: number;
  credentials: CredentialsInput;
  /** Bearer token, from --token or FLORENCE2_TOKEN. */
  token: string | undefined;
  progress: boolean;
  paths: string[];
}

/** One image's outcome in the JSON document. */
export interface PredictSuccess {
  image: string;
  task: TaskToken;
  result: Omit<TaskResult, 'meta'>;
  meta: ResponseMeta;
}
export interface PredictFailure {
  image: string;
  /** `code`: a gRPC status name (INVALID_ARGUMENT, ...) or a system error code (ENOENT, ...). */
  error: { code: string; message: string };
}

/** `florence2 predict ...`; resolves with the exit code. */
export async function predict(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: PredictIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  if (helpRequested(argv)) {
    io.stdout.write(USAGE);
    return EXIT.ok;
  }
  let settings: Settings;
  let images: string[];
  try {
    settings = parseSettings(argv, env);
    images = await expandImages(settings.paths);
    if (settings.saveVisuals !== undefined)
      await mkdir(settings.saveVisuals, { recursive: true }).catch((err: Error) =>
        Promise.reject(new UsageError(`--save-visuals: ${err.message}`)),
      );
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`florence2 predict: ${err.message}\n\nSee florence2 predict --help.\n`);
      return EXIT.usage;
    }
    throw err;
  }

  const client = new Florence2Client({
    address: settings.server,
    credentials: settings.credentials,
    ...(settings.token !== undefined ? { token: settings.token } : {}),
  });
  try {
    try {
      await client.modelInfo({ deadlineMs: Math.min(PROBE_DEADLINE_MS, settings.deadlineMs) });
    } catch (err) {
      io.stderr.write(`florence2 predict: cannot use the server at ${settings.server}: ${(err as Error).message}\n`);
      return EXIT.unreachable;
    }
    const status = await waitUntilServing(client, settings.waitMs);
    if (status !== 'SERVING') {
      io.stderr.write(
        `florence2 predict: the server at ${settings.server} is not serving (health ${status}) after ${settings.waitMs} ms (--wait-ms)\n`,
      );
      return EXIT.unreachable;
    }
    return await runAll(client, settings, images, io);
  } finally {
    client.close();
  }
}

/** Polls the service's health until SERVING or `waitMs` passes; returns the last status seen. */
async function waitUntilServing(client: Florence2Client, waitMs: number): Promise<string> {
  const until = Date.now() + waitMs;
  for (;;) {
    const status = await client.health('florence2.v1.Florence2', { deadlineMs: PROBE_DEADLINE_MS }).catch((err: { code?: number }) =>
      // A server (or proxy) without the health service cannot say; its requests will tell.
      err.code === grpc.status.UNIMPLEMENTED ? 'SERVING' : 'UNREACHABLE',
    );
    if (status === 'SERVING' || Date.now() + WAIT_POLL_MS > until) return status;
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}

/** `--help` / `-h` anywhere before `--`. */
function helpRequested(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

function parseSettings(argv: string[], env: NodeJS.ProcessEnv): Settings {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string' },
        task: { type: 'string' },
        text: { type: 'string' },
        classes: { type: 'string' },
        region: { type: 'string' },
        beams: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        json: { type: 'boolean' },
        'raw-text': { type: 'boolean' },
        'save-visuals': { type: 'string' },
        concurrency: { type: 'string' },
        'deadline-ms': { type: 'string' },
        'wait-ms': { type: 'string' },
        tls: { type: 'boolean' },
        token: { type: 'string' },
        ca: { type: 'string' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  const problems: string[] = [];

  const server = v.server ?? env.FLORENCE2_SERVER ?? '';
  if (server === '') problems.push('--server HOST:PORT is required');

  let task: TaskToken | undefined;
  if (v.task === undefined) problems.push('--task is required');
  else {
    task = resolveTask(v.task);
    if (!task)
      problems.push(`--task: unknown task ${JSON.stringify(v.task)} (a token like '<OD>' or one of ${Object.keys(TASK_NAMES).join(', ')})`);
  }

  const inputs: TaskInputs = {};
  if (v.text !== undefined) inputs.text = v.text;
  if (v.classes !== undefined) {
    const classes = v.classes
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    if (classes.length === 0) problems.push('--classes: give at least one class, e.g. --classes car,person');
    inputs.classes = classes;
  }
  if (v.region !== undefined) {
    const r = parseRegion(v.region);
    if (typeof r === 'string') problems.push(`--region: ${r}`);
    else inputs.region = r;
  }
  if (task) {
    // Every flag a task needs must be there, and no flag it would ignore: a silent no-op hides typos.
    const needs = TASK_INPUT[task];
    const flagOf = { text: '--text', classes: '--classes', region: '--region' } as const;
    for (const kind of ['text', 'classes', 'region'] as const) {
      const given = v[kind] !== undefined;
      if (needs === kind && !given) problems.push(`${task} needs ${flagOf[kind]}`);
      if (needs !== kind && given) problems.push(`${flagOf[kind]} is not used by ${task}`);
    }
    if (needs === 'text' && inputs.text?.trim() === '') problems.push('--text must not be empty');
  }

  const generation: GenerationOptions = { includeScores: true };
  const beams = positiveInt(v.beams, '--beams', problems);
  if (beams !== undefined) generation.numBeams = beams;
  const maxNew = positiveInt(v['max-new-tokens'], '--max-new-tokens', problems);
  if (maxNew !== undefined) generation.maxNewTokens = maxNew;
  if (v['raw-text']) generation.includeRawText = true;
  const concurrency = positiveInt(v.concurrency, '--concurrency', problems) ?? DEFAULT_CONCURRENCY;
  const deadlineMs = positiveInt(v['deadline-ms'], '--deadline-ms', problems) ?? DEFAULT_DEADLINE_MS;
  let waitMs = DEFAULT_WAIT_MS;
  if (v['wait-ms'] !== undefined) {
    const w = Number(v['wait-ms']);
    if (!Number.isInteger(w) || w < 0) problems.push(`--wait-ms must be an integer >= 0, got ${JSON.stringify(v['wait-ms'])}`);
    else waitMs = w;
  }

  let credentials: CredentialsInput = 'insecure';
  if (v.ca !== undefined) {
    try {
      credentials = { rootCerts: readFileSync(v.ca) };
    } catch (err) {
      problems.push(`--ca: cannot read ${v.ca}: ${(err as Error).message}`);
    }
  } else if (v.tls) credentials = {};

  if (parsed.positionals.length === 0) problems.push('give at least one IMAGE or FOLDER');
  if (problems.length > 0) throw new UsageError(problems.join('\n  '));
  const token = v.token ?? (process.env.FLORENCE2_TOKEN || undefined);
  return {
    server,
    token,
    task: task!,
    inputs,
    generation,
    json: v.json ?? false,
    saveVisuals: v['save-visuals'],
    concurrency,
    deadlineMs,
    waitMs,
    credentials,
    progress: !v['no-progress'],
    paths: parsed.positionals,
  };
}

function positiveInt(raw: string | undefined, flag: string, problems: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) {
    problems.push(`${flag} must be a positive integer, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  return n;
}

/** "x1,y1,x2,y2" → a Region, or the problem with it. */
export function parseRegion(raw: string): Region | string {
  const parts = raw.split(',').map((p) => p.trim());
  const nums = parts.map(Number);
  if (parts.length !== 4 || parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n)))
    return `expected four numbers x1,y1,x2,y2, got ${JSON.stringify(raw)}`;
  const [x1, y1, x2, y2] = nums;
  if (x1 > x2 || y1 > y2) return `expected x1 <= x2 and y1 <= y2, got ${JSON.stringify(raw)}`;
  return { x1, y1, x2, y2 };
}

/** Files as given; folders → their image files sorted by name (not recursive). */
export async function expandImages(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const problems: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      problems.push(`${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (err as Error).message}`);
      continue;
    }
    if (st.isDirectory()) {
      const entries = await readdir(p, { withFileTypes: true });
      const files = entries
        .filter((e) => (e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase()))
        .map((e) => e.name)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      if (files.length === 0) problems.push(`${p}: no image files (${IMAGE_EXTENSIONS.join(' ')})`);
      out.push(...files.map((f) => join(p, f)));
    } else out.push(p);
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n  '));
  return out;
}

/** Processes every image with bounded concurrency; prints in input order as results become available. */
async function runAll(client: Florence2Client, s: Settings, images: string[], io: PredictIo): Promise<number> {
  const outcomes = new Array<PredictSuccess | PredictFailure | undefined>(images.length);
  const progress = new Progress(io.stderr, images.length, s.progress && images.length > 1);
  const visualNames = visualFileNames(images);
  let printed = 0;
  const flushReadable = () => {
    while (printed < images.length && outcomes[printed] !== undefined) {
      const o = outcomes[printed++]!;
      progress.clear();
      if ('error' in o) io.stderr.write(`${o.image}: failed: ${o.error.code}: ${o.error.message}\n`);
      else io.stdout.write(formatReadable(o.image, s.task, o.result as TaskResult));
    }
  };

  progress.draw();
  let next = 0;
  const worker = async () => {
    while (next < images.length) {
      const i = next++;
      const image = images[i];
      outcomes[i] = await processImage(client, s, image, visualNames[i]);
      progress.done(image, !('error' in outcomes[i]));
      if (!s.json) flushReadable();
      progress.draw();
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.concurrency, images.length) }, worker));
  progress.finish();

  const results = outcomes.filter((o): o is PredictSuccess => o !== undefined && !('error' in o));
  const failures = outcomes.filter((o): o is PredictFailure => o !== undefined && 'error' in o);
  if (s.json) {
    // Wait for the write to reach the OS: a caller that exits right after must not truncate a piped document.
    const text = `${JSON.stringify({ results, failures }, null, 2)}\n`;
    await new Promise<void>((resolve) => io.stdout.write(text, () => resolve()));
  }
  return failures.length > 0 ? EXIT.failure : EXIT.ok;
}

async function processImage(
  client: Florence2Client,
  s: Settings,
  image: string,
  visualName: string,
): Promise<PredictSuccess | PredictFailure> {
  try {
    const bytes = await readFile(image);
    const request = requestForTask(s.task, bytes, s.inputs, s.generation);
    const full = await client.run(request, { deadlineMs: s.deadlineMs });
    const { meta, ...result } = full;
    if (s.saveVisuals !== undefined) {
      const scene = visualsFromResult(full, { region: s.inputs.region });
      const png = await drawResult(bytes, scene.instances, { format: 'png', ...(scene.caption ? { caption: scene.caption } : {}) });
      await writeFile(join(s.saveVisuals, visualName), png);
    }
    return { image, task: s.task, result, meta: { ...meta, timings: roundTimings(meta.timings) } };
  } catch (err) {
    return { image, error: describeError(err) };
  }
}

/**
 * Timings to 3 significant digits: a stage's time varies from run to run by far more than 0.5%, so
 * further digits (performance.now() differences such as 0.06043900000076974) are noise, while
 * significant digits rather than fixed decimals keep sub-millisecond stages (queue, postprocess)
 * from rounding to 0.
 */
export function roundTimings(timings: ResponseMeta['timings']): ResponseMeta['timings'] {
  const out = { ...timings };
  for (const k of Object.keys(out) as (keyof typeof out)[]) out[k] = Number(out[k].toPrecision(3));
  return out;
}

function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof Florence2Error) return { code: err.codeName, message: err.details };
  const e = err as NodeJS.ErrnoException;
  return { code: typeof e?.code === 'string' ? e.code : 'ERROR', message: e?.message ?? String(err) };
}

/** `<stem>.png` per image; a stem seen before gets `-2`, `-3`, ... so no visual overwrites another. */
export function visualFileNames(images: readonly string[]): string[] {
  const used = new Set<string>();
  return images.map((image) => {
    const stem = basename(image, extname(image)) || 'image';
    let name = `${stem}.png`;
    for (let k = 2; used.has(name.toLowerCase()); k++) name = `${stem}-${k}.png`;
    used.add(name.toLowerCase());
    return name;
  });
}

const num = (v: number) => v.toFixed(1);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const scoreText = (score: number | undefined) => (score === undefined ? '' : `  score ${score.toFixed(2)}`);
const boxLine = (b: Box, empty: string) =>
  `  ${b.label || empty}  (${num(b.x1)}, ${num(b.y1)})-(${num(b.x2)}, ${num(b.y2)})${scoreText(b.score)}\n`;

function bounds(polygons: readonly (readonly number[])[]): string {
  let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of polygons)
    for (let i = 0; i + 1 < p.length; i += 2) {
      x1 = Math.min(x1, p[i]);
      x2 = Math.max(x2, p[i]);
      y1 = Math.min(y1, p[i + 1]);
      y2 = Math.max(y2, p[i + 1]);
    }
  return Number.isFinite(x1) ? `(${num(x1)}, ${num(y1)})-(${num(x2)}, ${num(y2)})` : '(empty)';
}

/** The readable text for one image's result. */
export function formatReadable(image: string, task: TaskToken, r: TaskResult): string {
  switch (r.family) {
    case 'caption':
    case 'region':
      return `${image}: ${r.text}\n`;
    case 'detect':
    case 'phrase_grounding': {
      const noun = task === '<OD>' ? 'object' : task === '<CAPTION_TO_PHRASE_GROUNDING>' ? 'phrase' : 'region';
      return `${image}: ${plural(r.boxes.length, noun)}\n${r.boxes.map((b) => boxLine(b, '(region)')).join('')}`;
    }
    case 'open_vocabulary': {
      const lines = r.boxes.map((b) => boxLine(b, '(object)'));
      for (const inst of r.instances)
        lines.push(`  ${inst.label || '(object)'}  polygon ${bounds(inst.polygons)}${scoreText(inst.score)}\n`);
      return `${image}: ${plural(r.boxes.length + r.instances.length, 'object')}\n${lines.join('')}`;
    }
    case 'segment':
      return (
        `${image}: ${plural(r.instances.length, 'instance')}\n` +
        r.instances
          .map(
            (inst) =>
              `  ${inst.label || '(mask)'}  ${plural(inst.polygons.length, 'polygon')}, ${plural(
                inst.polygons.reduce((s, p) => s + p.length / 2, 0),
                'point',
              )}, bounds ${bounds(inst.polygons)}${scoreText(inst.score)}\n`,
          )
          .join('')
      );
    case 'ocr':
      if (task === '<OCR>') return `${image}: ${r.text}\n`;
      return (
        `${image}: ${plural(r.lines.length, 'text line')}\n` +
        r.lines
          .map((l) => {
            const corners: string[] = [];
            for (let i = 0; i + 1 < l.points.length; i += 2) corners.push(`(${num(l.points[i])}, ${num(l.points[i + 1])})`);
            return `  ${JSON.stringify(l.text)}  ${corners.join(' ')}${scoreText(l.score)}\n`;
          })
          .join('')
      );
  }
}

/** A progress bar on a terminal, one line per image otherwise; silent for a single image. */
class Progress {
  private completed = 0;
  private failed = 0;
  private shown = false;
  constructor(
    private readonly out: Writable,
    private readonly total: number,
    private readonly enabled: boolean,
  ) {}

  done(image: string, ok: boolean): void {
    this.completed++;
    if (!ok) this.failed++;
    if (this.enabled && !this.out.isTTY) this.out.write(`[${this.completed}/${this.total}] ${image}: ${ok ? 'ok' : 'failed'}\n`);
  }

  draw(): void {
    if (!this.enabled || !this.out.isTTY) return;
    const width = 30;
    const filled = Math.round((this.completed / this.total) * width);
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    this.out.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.completed}/${this.total} images${failed}\x1b[K`);
    this.shown = true;
  }

  /** Erases the bar before other output goes to the terminal. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }

  finish(): void {
    this.clear();
  }
}

if (require.main === module) {
  predict(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`florence2 predict: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
