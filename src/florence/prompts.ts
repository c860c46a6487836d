/**
 * Task token (+ text or region) → the prompt string the tokenizer sees (contract §2.1, reference
 * `_construct_prompts`), plus pixel-region quantization into `<loc_..>` tokens (contract §7.1).
 *
 * Decisions, relative to the references:
 * - The task and its input are separate arguments (the references take one concatenated string), so a
 *   free-form prompt without a task token is not accepted here.
 * - Input text is trimmed of surrounding whitespace, as the native HF processor (HFN) does with
 *   `.strip()`; the original remote code (RC) does not trim. Interior whitespace is kept as given.
 * - Mistakes the references would `assert`/raise on, or silently mangle, are errors here: text for a
 *   task that takes none, empty text for a task that needs it, and text that contains a task token
 *   (the references would re-interpret it as a second task).
 * - Pixel coordinates are quantized in float64 (RC does it in torch float32, which can differ by
 *   one bin on exact bin edges).
 */
import { type ImageSize, type PixelRegion, quantizeCoordinate } from './geometry';
import { TASKS, TASK_TOKENS, isTaskToken, type TaskSpec, type TaskToken } from 'florence2-client/catalogue';

/** Which request field a {@link PromptError} is about. */
export type PromptField = 'task' | 'text' | 'region' | 'size';

/**
 * A client mistake in the task/text/region combination. Extends `TypeError` so that generic
 * "bad argument" handling picks it up; `field` names the offending request field and the message
 * names it too (in backticks), together with the task.
 */
export class PromptError extends TypeError {
  /** The request field at fault. */
  readonly field: PromptField;
  /** The task the input was given for, when known. */
  readonly task: string | undefined;

  constructor(field: PromptField, message: string, task?: string) {
    super(message);
    this.name = 'PromptError';
    this.field = field;
    this.task = task;
  }
}

export { NUM_BINS, quantizeCoordinate } from './geometry';
export type { ImageSize, PixelRegion } from './geometry';

// One region as four location tokens. No leading zeros: `<loc_05>` is not a token.
const LOC = '<loc_(0|[1-9][0-9]{0,2})>';
const REGION_RE = new RegExp(`^${LOC}${LOC}${LOC}${LOC}$`);

/** Shortens user text for error messages so a huge input does not end up in logs verbatim. */
function quote(s: string): string {
  const max = 80;
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

function specFor(task: string): TaskSpec {
  // Callers are typed, but requests arrive from JS/proto land, so check at runtime as well.
  if (!isTaskToken(task)) {
    throw new PromptError('task', `\`task\` must be one of ${TASK_TOKENS.join(', ')}. Given: ${quote(String(task))}`, String(task));
  }
  return TASKS[task];
}

/** Puts `input` into the `{input}` slot. Not `String.replace`, which would expand `$&` and friends in the input. */
function fill(template: string, input: string): string {
  return template.split('{input}').join(input);
}

/**
 * Parses a region given as `<loc_x1><loc_y1><loc_x2><loc_y2>` (surrounding whitespace ignored) into
 * its four bins, or throws a {@link PromptError} naming `region`.
 */
export function parseLocRegion(region: string, task?: string): [number, number, number, number] {
  const m = REGION_RE.exec(region.trim());
  const forTask = task === undefined ? '' : ` for task ${task}`;
  if (m === null) {
    throw new PromptError(
      'region',
      `\`region\`${forTask} must be four location tokens <loc_x1><loc_y1><loc_x2><loc_y2> with integers in [0, 999]. Given: ${quote(region)}`,
      task,
    );
  }
  const bins = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] as [number, number, number, number];
  if (bins[0] > bins[2] || bins[1] > bins[3]) {
    throw new PromptError('region', `\`region\`${forTask} must have x1 <= x2 and y1 <= y2. Given: ${quote(region)}`, task);
  }
  return bins;
}

/** Formats four bins as `<loc_x1><loc_y1><loc_x2><loc_y2>`. */
export function formatLocRegion(bins: readonly [number, number, number, number]): string {
  return bins.map((b) => `<loc_${b}>`).join('');
}

/**
 * Builds the prompt for `task` (contract §2.1).
 *
 * - Tasks with input `'none'` accept no input: `undefined` or `''` (the proto default) only.
 * - Tasks with input `'text'` need non-empty text (trimmed, see the module notes) that contains no
 *   task token.
 * - Tasks with input `'region'` take the region as `<loc_x1><loc_y1><loc_x2><loc_y2>` (bins in
 *   [0, 999], x1 <= x2, y1 <= y2); use {@link constructRegionPrompt} to start from pixels.
 *
 * @throws PromptError naming `task`, `text` or `region`.
 */
export function constructPrompt(task: TaskToken, input?: string): string {
  const spec = specFor(task);
  const given = input ?? '';
  switch (spec.input) {
    case 'none':
      if (given !== '') {
        throw new PromptError('text', `\`text\` is not allowed for task ${task}, which takes no input. Given: ${quote(given)}`, task);
      }
      return spec.prompt;
    case 'text': {
      const text = given.trim();
      if (text === '') {
        throw new PromptError('text', `\`text\` is required for task ${task} and must not be empty or only whitespace.`, task);
      }
      const embedded = TASK_TOKENS.find((t) => text.includes(t));
      if (embedded !== undefined) {
        throw new PromptError('text', `\`text\` for task ${task} must not contain a task token (found ${embedded}).`, task);
      }
      return fill(spec.prompt, text);
    }
    case 'region': {
      if (given.trim() === '') {
        throw new PromptError('region', `\`region\` is required for task ${task}.`, task);
      }
      return fill(spec.prompt, formatLocRegion(parseLocRegion(given, task)));
    }
  }
}

/**
 * Quantizes a pixel box to bins `[x1, y1, x2, y2]` with the reference's clamping and no other
 * checks (coordinates outside the image clamp to 0 or 999, as in the HF test example).
 */
export function quantizeRegion(region: PixelRegion, size: ImageSize): [number, number, number, number] {
  return [
    quantizeCoordinate(region.x1, size.width),
    quantizeCoordinate(region.y1, size.height),
    quantizeCoordinate(region.x2, size.width),
    quantizeCoordinate(region.y2, size.height),
  ];
}

/** Throws unless `size` is a real image size. */
function checkSize(size: ImageSize, task: string | undefined): void {
  for (const k of ['width', 'height'] as const) {
    const v = size[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      const forTask = task === undefined ? '' : ` (task ${task})`;
      throw new PromptError('size', `\`size.${k}\` must be a finite number > 0${forTask}. Given: ${String(v)}`, task);
    }
  }
}

/**
 * Checks a pixel region: finite numbers, x1 <= x2, y1 <= y2, and inside [0, width] × [0, height].
 * @throws PromptError naming `region` (or `size` for a bad image size).
 */
export function validatePixelRegion(region: PixelRegion, size: ImageSize, task?: string): void {
  const forTask = task === undefined ? '' : ` for task ${task}`;
  if (typeof size !== 'object' || size === null) {
    throw new PromptError('size', `\`size\`${forTask} must be an object {width, height}.`, task);
  }
  checkSize(size, task);
  if (typeof region !== 'object' || region === null) {
    throw new PromptError('region', `\`region\`${forTask} must be an object {x1, y1, x2, y2}.`, task);
  }
  for (const k of ['x1', 'y1', 'x2', 'y2'] as const) {
    const v = region[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new PromptError('region', `\`region.${k}\`${forTask} must be a finite number. Given: ${String(v)}`, task);
    }
  }
  const { x1, y1, x2, y2 } = region;
  const given = `Given: [${x1}, ${y1}, ${x2}, ${y2}]`;
  if (x1 > x2 || y1 > y2) {
    throw new PromptError('region', `\`region\`${forTask} must have x1 <= x2 and y1 <= y2. ${given}`, task);
  }
  if (x1 < 0 || y1 < 0 || x2 > size.width || y2 > size.height) {
    throw new PromptError(
      'region',
      `\`region\`${forTask} must lie inside the image [0, ${size.width}] × [0, ${size.height}]. ${given}`,
      task,
    );
  }
}

/**
 * Builds the prompt of a region task from a box in pixels of the original image: validates the box
 * ({@link validatePixelRegion}), quantizes it ({@link quantizeRegion}) and fills the template with
 * `<loc_x1><loc_y1><loc_x2><loc_y2>`.
 *
 * @throws PromptError naming `region` (also when `task` does not take a region), `size` or `task`.
 */
export function constructRegionPrompt(task: TaskToken, region: PixelRegion, size: ImageSize): string {
  const spec = specFor(task);
  if (spec.input !== 'region') {
    throw new PromptError('region', `\`region\` is not allowed for task ${task}; only region tasks take one.`, task);
  }
  validatePixelRegion(region, size, task);
  return fill(spec.prompt, formatLocRegion(quantizeRegion(region, size)));
}
