/**
 * Untrusted proto requests → validated work. Every failure is an InvalidArgumentError naming the
 * field, the limit and the value. Image headers are read here (not decoded) so oversized or
 * non-image payloads are refused before they cost a worker anything.
 */
import { InvalidArgumentError } from '../common/errors';
import { ImageDecodeError, probeImage } from '../florence/preprocess';
import type { WorkerErrorField, WorkerRequest } from '../common/protocol';
import {
  SELECTOR_FIELDS,
  TASK_FAMILIES,
  selectorTasks,
  type SelectorFamily,
  type TaskFamily,
  type TaskToken,
} from 'florence2-client/catalogue';
import type { PixelRegion } from '../florence/geometry';
import type { CaptionRequest__Output } from 'florence2-client/generated/florence2/v1/CaptionRequest';
import type { DetectRequest__Output } from 'florence2-client/generated/florence2/v1/DetectRequest';
import type { OpenVocabularyRequest__Output } from 'florence2-client/generated/florence2/v1/OpenVocabularyRequest';
import type { PhraseGroundingRequest__Output } from 'florence2-client/generated/florence2/v1/PhraseGroundingRequest';
import type { SegmentRequest__Output } from 'florence2-client/generated/florence2/v1/SegmentRequest';
import type { OcrRequest__Output } from 'florence2-client/generated/florence2/v1/OcrRequest';
import type { RegionRequest__Output } from 'florence2-client/generated/florence2/v1/RegionRequest';
import type { RunRequest__Output } from 'florence2-client/generated/florence2/v1/RunRequest';
import type { Options__Output } from 'florence2-client/generated/florence2/v1/Options';
import type { Image__Output } from 'florence2-client/generated/florence2/v1/Image';
import type { Region__Output } from 'florence2-client/generated/florence2/v1/Region';

/** The request limits of a server (from its configuration). */
export interface RequestLimits {
  maxImagePixels: number;
  maxNumBeams: number;
  maxNewTokens: number;
  maxTextChars: number;
  maxClasses: number;
  /** Most decoder rows (prompts × beams) × max_new_tokens of one request. */
  maxRequestTokens: number;
}

/** The request field of each family that carries the prompt text. */
const TEXT_FIELD: Partial<Record<TaskFamily, string>> = {
  phrase_grounding: 'caption',
  open_vocabulary: 'classes',
  segment: 'referring_expression',
};

/** The request field (without the oneof prefix) that a worker error's library field stands for: the one home of that renaming. */
export function requestField(family: TaskFamily, field: WorkerErrorField): string {
  switch (field) {
    case 'text':
      return TEXT_FIELD[family] ?? 'text';
    case 'region':
    case 'size':
      // `size` is the image size a region is quantized against: the region is what the client can fix.
      return 'region';
    case 'image':
      return 'image.data';
    case 'numBeams':
      return 'options.num_beams';
    case 'maxNewTokens':
      return 'options.max_new_tokens';
    case 'task':
      return 'task';
  }
}

/** A request ready for the scheduler: one worker request per prompt (open vocabulary: one per class). */
export interface ValidRequest {
  family: TaskFamily;
  /** The task token, for metrics and logs. */
  task: TaskToken;
  requests: WorkerRequest[];
  /** Open vocabulary: the class asked for by each worker request. */
  classes?: string[];
  numBeams?: number;
  maxNewTokens?: number;
  includeRawText: boolean;
  includeScores: boolean;
}

/**
 * A selector family's enum value → its task, from the catalogue. `<prefix>UNSPECIFIED` (and an unset
 * field) picks the default; proto3 JSON may also send the enum's number, which grpc-js passes through.
 */
function selectorTable(family: SelectorFamily): Record<string, TaskToken> {
  const tasks = selectorTasks(family);
  const table: Record<string, TaskToken> = { [`${SELECTOR_FIELDS[family].enumPrefix}UNSPECIFIED`]: tasks[0].token };
  for (const t of tasks) table[t.proto] = t.token;
  return table;
}
const SELECTOR_TABLES: Record<SelectorFamily, Record<string, TaskToken>> = {
  caption: selectorTable('caption'),
  detect: selectorTable('detect'),
  region: selectorTable('region'),
};

function selectedTask(family: SelectorFamily, value: string | number | undefined, prefix: string): TaskToken {
  const table = SELECTOR_TABLES[family];
  const field = `${prefix}${SELECTOR_FIELDS[family].field}`;
  const task = table[String(value ?? Object.keys(table)[0])];
  if (!task)
    throw new InvalidArgumentError(
      field,
      `\`${field}\` has no such value: ${JSON.stringify(value)} (allowed: ${Object.keys(table).join(', ')})`,
    );
  return task;
}

/**
 * Checks the image bytes and header with the worker's own probe (same format allowlist and pixel
 * rule), so an SVG or an oversized image is refused here, before it queues. Decodes no pixels.
 */
async function checkImage(image: Image__Output | null | undefined, prefix: string, limits: RequestLimits): Promise<Uint8Array> {
  const field = `${prefix}image.data`;
  const data = image?.data;
  if (!data || data.length === 0)
    throw new InvalidArgumentError(field, `\`${field}\` is required: the encoded image bytes (JPEG, PNG, WebP, GIF, TIFF or AVIF)`);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  try {
    await probeImage(bytes, limits.maxImagePixels);
  } catch (err) {
    if (!(err instanceof ImageDecodeError)) throw err;
    const size = err.declaredSize;
    if (err.reason === 'too_many_pixels' && size) {
      throw new InvalidArgumentError(
        field,
        `\`${field}\` is ${size.width}x${size.height} = ${size.width * size.height} pixels; the limit is ${limits.maxImagePixels} pixels`,
      );
    }
    throw new InvalidArgumentError(field, `\`${field}\` is not a decodable image: ${err.message}`);
  }
  return bytes;
}

function checkText(value: string | undefined, field: string, limits: RequestLimits): string {
  const text = (value ?? '').trim();
  if (text === '') throw new InvalidArgumentError(field, `\`${field}\` is required and must not be blank`);
  if (text.length > limits.maxTextChars)
    throw new InvalidArgumentError(field, `\`${field}\` must be at most ${limits.maxTextChars} characters. Given: ${text.length}`);
  return text;
}

function checkRegion(region: Region__Output | null | undefined, field: string): PixelRegion {
  if (!region) throw new InvalidArgumentError(field, `\`${field}\` is required: a box in pixels (x1, y1, x2, y2)`);
  const { x1, y1, x2, y2 } = region;
  for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) {
    if (!Number.isFinite(v)) throw new InvalidArgumentError(field, `\`${field}.${k}\` must be a finite number. Given: ${v}`);
  }
  if (x1 > x2 || y1 > y2)
    throw new InvalidArgumentError(field, `\`${field}\` must have x1 <= x2 and y1 <= y2. Given: (${x1}, ${y1}, ${x2}, ${y2})`);
  return { x1, y1, x2, y2 };
}

function checkOptions(
  o: Options__Output | null | undefined,
  prefix: string,
  limits: RequestLimits,
): Pick<ValidRequest, 'numBeams' | 'maxNewTokens' | 'includeRawText' | 'includeScores'> {
  const numBeams = o?.num_beams ?? 0;
  const maxNewTokens = o?.max_new_tokens ?? 0;
  if (numBeams > limits.maxNumBeams)
    throw new InvalidArgumentError(
      `${prefix}options.num_beams`,
      `\`${prefix}options.num_beams\` must be <= ${limits.maxNumBeams}. Given: ${numBeams}`,
    );
  if (maxNewTokens > limits.maxNewTokens)
    throw new InvalidArgumentError(
      `${prefix}options.max_new_tokens`,
      `\`${prefix}options.max_new_tokens\` must be <= ${limits.maxNewTokens}. Given: ${maxNewTokens}`,
    );
  return {
    numBeams: numBeams === 0 ? undefined : numBeams,
    // Unset means the server's bound, not the model's full position table.
    maxNewTokens: maxNewTokens === 0 ? limits.maxNewTokens : maxNewTokens,
    includeRawText: o?.include_raw_text ?? false,
    includeScores: o?.include_scores ?? false,
  };
}

export async function validateCaption(r: CaptionRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const task = selectedTask('caption', r.detail, prefix);
  const image = await checkImage(r.image, prefix, limits);
  return { family: 'caption', task, requests: [{ image, task }], ...checkOptions(r.options, prefix, limits) };
}

export async function validateDetect(r: DetectRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const task = selectedTask('detect', r.kind, prefix);
  const image = await checkImage(r.image, prefix, limits);
  return { family: 'detect', task, requests: [{ image, task }], ...checkOptions(r.options, prefix, limits) };
}

export async function validateOpenVocabulary(r: OpenVocabularyRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const field = `${prefix}classes`;
  const classes = r.classes ?? [];
  if (classes.length === 0) throw new InvalidArgumentError(field, `\`${field}\` must name at least one class`);
  if (classes.length > limits.maxClasses)
    throw new InvalidArgumentError(field, `\`${field}\` must have at most ${limits.maxClasses} entries. Given: ${classes.length}`);
  const checked = classes.map((c, i) => checkText(c, `${field}[${i}]`, limits));
  const options = checkOptions(r.options, prefix, limits);
  const image = await checkImage(r.image, prefix, limits);
  const task: TaskToken = '<OPEN_VOCABULARY_DETECTION>';
  return { family: 'open_vocabulary', task, requests: checked.map((text) => ({ image, task, text })), classes: checked, ...options };
}

export async function validatePhraseGrounding(
  r: PhraseGroundingRequest__Output,
  limits: RequestLimits,
  prefix = '',
): Promise<ValidRequest> {
  const text = checkText(r.caption, `${prefix}caption`, limits);
  const options = checkOptions(r.options, prefix, limits);
  const image = await checkImage(r.image, prefix, limits);
  const task: TaskToken = '<CAPTION_TO_PHRASE_GROUNDING>';
  return { family: 'phrase_grounding', task, requests: [{ image, task, text }], ...options };
}

export async function validateSegment(r: SegmentRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const options = checkOptions(r.options, prefix, limits);
  if (r.target === 'region') {
    const region = checkRegion(r.region, `${prefix}region`);
    const image = await checkImage(r.image, prefix, limits);
    const task: TaskToken = '<REGION_TO_SEGMENTATION>';
    return { family: 'segment', task, requests: [{ image, task, region }], ...options };
  }
  if (r.target !== 'referring_expression') {
    throw new InvalidArgumentError(`${prefix}target`, `\`${prefix}target\` is required: set \`referring_expression\` or \`region\``);
  }
  const text = checkText(r.referring_expression, `${prefix}referring_expression`, limits);
  const image = await checkImage(r.image, prefix, limits);
  const task: TaskToken = '<REFERRING_EXPRESSION_SEGMENTATION>';
  return { family: 'segment', task, requests: [{ image, task, text }], ...options };
}

export async function validateOcr(r: OcrRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const task: TaskToken = r.with_regions ? '<OCR_WITH_REGION>' : '<OCR>';
  const options = checkOptions(r.options, prefix, limits);
  const image = await checkImage(r.image, prefix, limits);
  return { family: 'ocr', task, requests: [{ image, task }], ...options };
}

export async function validateRegion(r: RegionRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  const task = selectedTask('region', r.task, prefix);
  const region = checkRegion(r.region, `${prefix}region`);
  const options = checkOptions(r.options, prefix, limits);
  const image = await checkImage(r.image, prefix, limits);
  return { family: 'region', task, requests: [{ image, task, region }], ...options };
}

/** The generic request: exactly one task of the oneof. Field names carry the oneof member (e.g. `detect.image.data`). */
export function validateRun(r: RunRequest__Output, limits: RequestLimits, prefix = ''): Promise<ValidRequest> {
  switch (r.task) {
    case 'caption':
      return validateCaption(r.caption!, limits, `${prefix}caption.`);
    case 'detect':
      return validateDetect(r.detect!, limits, `${prefix}detect.`);
    case 'open_vocabulary':
      return validateOpenVocabulary(r.open_vocabulary!, limits, `${prefix}open_vocabulary.`);
    case 'phrase_grounding':
      return validatePhraseGrounding(r.phrase_grounding!, limits, `${prefix}phrase_grounding.`);
    case 'segment':
      return validateSegment(r.segment!, limits, `${prefix}segment.`);
    case 'ocr':
      return validateOcr(r.ocr!, limits, `${prefix}ocr.`);
    case 'region':
      return validateRegion(r.region!, limits, `${prefix}region.`);
    default:
      return Promise.reject(
        new InvalidArgumentError(
          `${prefix}task`,
          `\`${prefix}task\` is required: set one of caption, detect, open_vocabulary, phrase_grounding, segment, ocr, region`,
        ),
      );
  }
}

const isTaskFamily = (v: unknown): v is TaskFamily => (TASK_FAMILIES as readonly unknown[]).includes(v);

/**
 * The task a request asks for, whether or not it is valid (for metrics and logs of a refusal), or
 * undefined where it cannot be told (a Run without a task, an unknown selector value).
 */
export function requestedTask(family: TaskFamily | 'run', r: Record<string, unknown>): TaskToken | undefined {
  const selector = (f: SelectorFamily) => {
    const value = r[SELECTOR_FIELDS[f].field];
    const key = typeof value === 'string' || typeof value === 'number' ? String(value) : `${SELECTOR_FIELDS[f].enumPrefix}UNSPECIFIED`;
    return SELECTOR_TABLES[f][key];
  };
  switch (family) {
    case 'caption':
    case 'detect':
    case 'region':
      return selector(family);
    case 'open_vocabulary':
      return '<OPEN_VOCABULARY_DETECTION>';
    case 'phrase_grounding':
      return '<CAPTION_TO_PHRASE_GROUNDING>';
    case 'segment':
      return r.target === 'region'
        ? '<REGION_TO_SEGMENTATION>'
        : r.target === 'referring_expression'
          ? '<REFERRING_EXPRESSION_SEGMENTATION>'
          : undefined;
    case 'ocr':
      return r.with_regions ? '<OCR_WITH_REGION>' : '<OCR>';
    case 'run': {
      const member = r.task;
      const inner = typeof member === 'string' ? r[member] : undefined;
      if (typeof inner !== 'object' || inner === null || !isTaskFamily(member)) return undefined;
      return requestedTask(member, inner as Record<string, unknown>);
    }
  }
}

/**
 * Bounds the work one request can ask for: decoder rows (prompts × beams) × new tokens. Each limit
 * alone allows far more together (32 classes × 8 beams × 1024 tokens).
 */
export function checkRequestTokens(v: ValidRequest, limits: RequestLimits, defaultNumBeams: number, prefix = ''): void {
  const beams = v.numBeams ?? defaultNumBeams;
  const tokens = v.maxNewTokens ?? limits.maxNewTokens;
  const work = v.requests.length * beams * tokens;
  if (work <= limits.maxRequestTokens) return;
  const field = `${prefix}options.max_new_tokens`;
  throw new InvalidArgumentError(
    field,
    `\`${field}\`: ${v.requests.length} prompt(s) × ${beams} beam(s) × ${tokens} new tokens = ${work} exceeds the server's limit of ${limits.maxRequestTokens} per request; ask for fewer tokens, beams or classes`,
  );
}
