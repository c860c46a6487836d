/** `florence2 annotate`: auto-annotate images with Florence-2 into a training dataset. */
import { EXIT } from './exit-codes';
import {
  AnnotateUsageError,
  AutoAnnotator,
  DatasetError,
  InputError,
  ModelNotFoundError,
  OUTPUT_FORMATS,
  RemoteBackendUnavailable,
  type AnnotateOptions,
  type AnnotationProgress,
  type AnnotationSummary,
  type AutoAnnotatorOptions,
  type OutputFormat,
} from '../annotate';
import { DETECTION_MODES, SEGMENTATION_SOURCES, type DetectionMode, type SegmentationSource } from '../annotate/prompting';

export const ANNOTATE_USAGE = `Usage: florence2 annotate DATA... --output DIR [options]

Auto-annotates images with Florence-2 into a dataset Ultralytics can train on directly
(DIR/images, DIR/labels, DIR/data.yaml, DIR/classes.txt), and/or COCO JSON. A run resumes:
images already annotated in DIR are skipped.

DATA: an image, a folder, a glob (quote it: 'photos/**/*.jpg') or a .txt list of paths
(one per line, relative to the list's folder). Several may be given.

Model (default: in process, on --model, else $FLORENCE2_MODEL, else the Hub's base-ft):
  --model DIR|NAME          Florence-2 folder (onnx-community layout), or a Hub model (base, base-ft,
                            large, large-ft, owner/name; florence-2-base also works), taken from
                            the Hugging Face hub cache ($HF_HUB_CACHE) or downloaded into it
  --server TARGET           run on a florence2 server instead: HOST:PORT, or a fleet of them,
                            dns:///NAME:PORT (every address NAME resolves to, e.g. a Kubernetes
                            headless Service) or ipv4:ADDR:PORT,ADDR:PORT,...; requests spread
                            round-robin, and those a failing server drops are retried on another
  --token TOKEN             with --server: bearer token for a server with --auth-tokens-file
                            (default: $FLORENCE2_TOKEN)
  --num-beams N             beams for generation (default: the model's)
  --offline                 never use the network: a Hub model must be in the cache (as
                            FLORENCE2_OFFLINE=1 or HF_HUB_OFFLINE=1)

What to annotate:
  --classes a,b,...         only these classes, ids in this order (default: every object <OD> finds,
                            ids in first-seen order, kept across runs)
  --mode MODE               with --classes: grounding (default; one <CAPTION_TO_PHRASE_GROUNDING>
                            with the classes joined by <and>), od-filter (<OD>, labels matching a
                            class), open-vocabulary (one <OPEN_VOCABULARY_DETECTION> per class)
  --classes-per-prompt N    grounding: at most N classes per prompt
  --min-score S             drop objects scored below S (0..1)
  --min-box-size PX         drop boxes narrower or lower than PX pixels
  --segment                 also segment (COCO polygons); implied by --format yolo-seg
  --seg-source SRC          region (default; <REGION_TO_SEGMENTATION> per box) or referring
                            (<REFERRING_EXPRESSION_SEGMENTATION> per class; needs --classes)

Output:
  -o, --output DIR          dataset folder (required; empty, new, or an earlier annotate output)
  --format F[,F]            yolo (default), yolo-seg, coco; several with commas: yolo,coco
  --split F                 train fraction, e.g. 0.8: images/train + images/val (labels alike)
  --link                    symlink images into DIR instead of copying them
  --visuals                 draw boxes, polygons, labels and scores into DIR/visuals/
  --overwrite               start over instead of resuming

Run:
  -r, --recursive           descend into subfolders of folder inputs
  --concurrency N           backend calls in flight (default 2; with --server, requests in
                            flight over the server or fleet, default 8)
  --batch-size N            requests per backend call (default 4; 1 with --server)
  --json                    print the summary as JSON on stdout
  --no-progress             no progress bar (it is drawn on stderr when that is a terminal)
  -h, --help                this help

Exit status: 0 every image annotated; 1 some images failed (listed in the summary); 2 usage or
output-folder error; 130 interrupted (Ctrl-C stops after the current image; run again to resume).
`;

class UsageError extends Error {}

const HOST_PORT = /^(?:[^\s:/,[\]]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/;
const IPV4_PORT = /^\d{1,3}(?:\.\d{1,3}){3}:(\d{1,5})$/;
const IPV6_PORT = /^\[[0-9a-fA-F:.]+\]:(\d{1,5})$/;

/**
 * The gRPC targets --server takes (each with a port in 1..65535): `HOST:PORT`, `[V6]:PORT`,
 * `dns:[//AUTHORITY/]NAME:PORT`, and the address lists `ipv4:A:P,A:P` and `ipv6:[A]:P,[A]:P`.
 */
export function isServerTarget(target: string): boolean {
  const portOk = (m: RegExpExecArray | null) => m !== null && Number(m[1]) >= 1 && Number(m[1]) <= 65535;
  const dns = /^dns:(?:\/\/[^\s/]*\/)?(.*)$/i.exec(target);
  if (dns) return portOk(HOST_PORT.exec(dns[1]));
  const list = /^(ipv4|ipv6):(.*)$/i.exec(target);
  if (list) {
    const one = list[1].toLowerCase() === 'ipv4' ? IPV4_PORT : IPV6_PORT;
    return list[2].split(',').every((a) => portOk(one.exec(a)));
  }
  return portOk(HOST_PORT.exec(target));
}

interface Parsed {
  data: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set([
  '--output',
  '--classes',
  '--format',
  '--server',
  '--token',
  '--model',
  '--split',
  '--min-score',
  '--min-box-size',
  '--mode',
  '--seg-source',
  '--classes-per-prompt',
  '--concurrency',
  '--batch-size',
  '--num-beams',
]);
const BOOL_FLAGS = new Set([
  '--visuals',
  '--recursive',
  '--link',
  '--overwrite',
  '--json',
  '--segment',
  '--no-progress',
  '--offline',
  '--help',
]);
const ALIASES: Record<string, string> = { '-o': '--output', '-r': '--recursive', '-h': '--help' };

function parseArgs(argv: readonly string[]): Parsed {
  const data: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      data.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      data.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq > 0 ? arg.slice(0, eq) : arg;
    name = ALIASES[name] ?? name;
    if (BOOL_FLAGS.has(name)) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      flags.set(name, true);
    } else if (VALUE_FLAGS.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      if (flags.has(name)) throw new UsageError(`${name} is given twice`);
      flags.set(name, value);
    } else throw new UsageError(`unknown option ${name}`);
  }
  return { data, flags };
}

function num(flags: Parsed['flags'], name: string, check: (v: number) => boolean, what: string): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`${name} must be ${what}, got ${JSON.stringify(v)}`);
  return n;
}

const str = (flags: Parsed['flags'], name: string): string | undefined => {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
};
const isInt = (lo: number) => (v: number) => Number.isInteger(v) && v >= lo;

/** Parses the command line into annotator and run options; throws UsageError. */
function buildOptions(
  argv: readonly string[],
): { annotator: AutoAnnotatorOptions; run: AnnotateOptions; json: boolean; progress: boolean; offline: boolean } | 'help' {
  const { data, flags } = parseArgs(argv);
  if (flags.has('--help')) return 'help';
  if (data.length === 0) throw new UsageError('no DATA given (an image, folder, glob or .txt list)');
  const output = str(flags, '--output');
  if (output === undefined || output === '') throw new UsageError('--output DIR is required');
  const server = str(flags, '--server');
  const model = str(flags, '--model');
  if (server !== undefined && model !== undefined) throw new UsageError('give --server or --model, not both');
  if (server !== undefined && !isServerTarget(server))
    throw new UsageError(`--server must be HOST:PORT, dns:///NAME:PORT or ipv4:ADDR:PORT,ADDR:PORT,..., got ${JSON.stringify(server)}`);
  const formats = (str(flags, '--format') ?? 'yolo').split(',').map((s) => s.trim());
  for (const f of formats)
    if (!(OUTPUT_FORMATS as readonly string[]).includes(f))
      throw new UsageError(`--format: unknown format ${JSON.stringify(f)} (use ${OUTPUT_FORMATS.join(', ')})`);
  const mode = str(flags, '--mode');
  if (mode !== undefined && !(DETECTION_MODES as readonly string[]).includes(mode))
    throw new UsageError(`--mode must be one of ${DETECTION_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  const segSource = str(flags, '--seg-source');
  if (segSource !== undefined && !(SEGMENTATION_SOURCES as readonly string[]).includes(segSource)) {
    throw new UsageError(`--seg-source must be one of ${SEGMENTATION_SOURCES.join(', ')}, got ${JSON.stringify(segSource)}`);
  }
  const classesText = str(flags, '--classes');
  const classes = classesText
    ?.split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  if (classesText !== undefined && classes!.length === 0) throw new UsageError('--classes is empty');
  if (mode !== undefined && classes === undefined) throw new UsageError('--mode needs --classes');
  const numBeams = num(flags, '--num-beams', isInt(1), 'an integer >= 1');
  const run: AnnotateOptions = {
    data,
    outputDir: output,
    save: true,
    saveVisuals: flags.has('--visuals'),
    format: formats as OutputFormat[],
    recursive: flags.has('--recursive'),
    link: flags.has('--link'),
    overwrite: flags.has('--overwrite'),
    segment: flags.has('--segment'),
    split: num(flags, '--split', (v) => v > 0 && v < 1, 'a train fraction in (0, 1), e.g. 0.8'),
    minScore: num(flags, '--min-score', (v) => v >= 0 && v <= 1, 'in [0, 1]'),
    minBoxSize: num(flags, '--min-box-size', (v) => v >= 0, '>= 0 (pixels)'),
    classesPerPrompt: num(flags, '--classes-per-prompt', isInt(1), 'an integer >= 1'),
    concurrency: num(flags, '--concurrency', isInt(1), 'an integer >= 1'),
    batchSize: num(flags, '--batch-size', isInt(1), 'an integer >= 1'),
  };
  if (classes !== undefined) run.classes = classes;
  if (mode !== undefined) run.mode = mode as DetectionMode;
  if (segSource !== undefined) run.segmentation = segSource as SegmentationSource;
  const annotator: AutoAnnotatorOptions = {};
  if (server !== undefined) annotator.server = server;
  const token = str(flags, '--token') ?? (process.env.FLORENCE2_TOKEN || undefined);
  if (str(flags, '--token') !== undefined && server === undefined) throw new UsageError('--token needs --server');
  if (server !== undefined && token !== undefined) annotator.token = token;
  if (model !== undefined) annotator.model = model;
  if (flags.has('--offline') && server !== undefined) throw new UsageError('--offline resolves a local model: not with --server');
  if (numBeams !== undefined) annotator.generation = { numBeams };
  return { annotator, run, json: flags.has('--json'), progress: !flags.has('--no-progress'), offline: flags.has('--offline') };
}

/** A one-line progress bar, redrawn in place. */
function progressLine(p: AnnotationProgress): string {
  const width = 28;
  const frac = p.total === 0 ? 1 : p.done / p.total;
  const filled = Math.round(frac * width);
  const secs = p.elapsedMs / 1000;
  const rate = secs > 0 ? p.annotated / secs : 0;
  const left = p.total - p.done;
  const eta = rate > 0 ? `, ETA ${Math.ceil(left / rate)}s` : '';
  const extra = [p.skipped ? `${p.skipped} skipped` : '', p.failed ? `${p.failed} failed` : ''].filter(Boolean).join(', ');
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} ${(frac * 100).toFixed(0)}% ${rate.toFixed(2)} img/s${eta}${extra ? ` (${extra})` : ''}`;
}

/** The human-readable summary. */
export function formatSummary(s: AnnotationSummary): string {
  const lines: string[] = [];
  const state = s.interrupted ? 'interrupted: ' : '';
  lines.push(
    `${state}${s.annotated} of ${s.images} images annotated` +
      (s.skipped ? `, ${s.skipped} already done` : '') +
      (s.failed ? `, ${s.failed} failed` : '') +
      ` in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.imagesPerSecond.toFixed(2)} images/s)`,
  );
  const perClass = Object.entries(s.objectsPerClass)
    .map(([n, c]) => `${n} ${c}`)
    .join(', ');
  lines.push(`objects: ${s.objects}${perClass ? ` (${perClass})` : ''}; images without objects: ${s.emptyImages}`);
  if (s.unmatched || s.filtered)
    lines.push(`dropped this run: ${s.unmatched} phrases matching no class, ${s.filtered} below --min-score / --min-box-size`);
  if (s.failures.length > 0) {
    lines.push('failed:');
    for (const f of s.failures) lines.push(`  ${f.path}: ${f.error}`);
  }
  if (s.ignored.length > 0) {
    lines.push(`ignored (not images): ${s.ignored.length}`);
    for (const f of s.ignored.slice(0, 20)) lines.push(`  ${f.path}: ${f.reason}`);
    if (s.ignored.length > 20) lines.push(`  ... and ${s.ignored.length - 20} more`);
  }
  if (s.outputDir !== null) lines.push(`dataset: ${s.outputDir}${s.files.length ? ` (${s.files.join(', ')})` : ''}`);
  if (s.interrupted) lines.push('run the same command again to resume');
  return `${lines.join('\n')}\n`;
}

/** Runs `florence2 annotate`; resolves to the exit code (0 ok, 1 some images failed, 2 usage, 130 interrupted). */
export async function annotate(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = buildOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`florence2 annotate: ${err.message}\n\nSee florence2 annotate --help.\n`);
      return EXIT.usage;
    }
    throw err;
  }
  if (parsed === 'help') {
    process.stdout.write(ANNOTATE_USAGE);
    return EXIT.ok;
  }
  const { annotator: annotatorOptions, run, json } = parsed;
  const tty = process.stderr.isTTY === true;
  const showProgress = parsed.progress && tty;
  const controller = new AbortController();
  // First Ctrl-C: finish the image being written and stop cleanly; a second one exits at once.
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted);
    process.stderr.write('\nflorence2 annotate: stopping after the current image (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The Hub code's own switch, so the flag means exactly what the variable does.
  const annotator = new AutoAnnotator({ ...annotatorOptions, env: parsed.offline ? { ...env, FLORENCE2_OFFLINE: '1' } : env });
  try {
    const summary = await annotator.annotate({
      ...run,
      signal: controller.signal,
      onProgress: showProgress ? (p) => process.stderr.write(`\r${progressLine(p)}\x1b[K`) : undefined,
    });
    if (showProgress) process.stderr.write('\n');
    if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else process.stderr.write(formatSummary(summary));
    return summary.interrupted ? EXIT.interrupted : summary.failed > 0 ? EXIT.failure : EXIT.ok;
  } catch (err) {
    if (showProgress) process.stderr.write('\n');
    const usage = [AnnotateUsageError, DatasetError, InputError, ModelNotFoundError, RemoteBackendUnavailable].some(
      (c) => err instanceof c,
    );
    process.stderr.write(`florence2 annotate: ${err instanceof Error ? err.message : String(err)}\n`);
    return usage ? 2 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await annotator.close().catch(() => undefined);
  }
}

if (require.main === module) {
  void annotate(process.argv.slice(2), process.env).then((code) => process.exit(code));
}
