/**
 * The Florence-2 task catalogue (contract §2), the one home of every fact about a task: its token,
 * the prompt the tokenizer sees, what it takes after the token, how its output is parsed, and how
 * the API names it (RPC family, the enum value that selects it, the CLI name, the metrics label).
 * Prompts, post-processing, request validation, the client and metrics all derive from it.
 * Plain data with no runtime dependencies, so the client shares it.
 */

/** How the generated text of a task is parsed (the reference's `tasks_answer_post_processing_type`). */
export type PostProcessType =
  'pure_text' | 'ocr' | 'description_with_bboxes' | 'bboxes' | 'phrase_grounding' | 'polygons' | 'description_with_bboxes_or_polygons';

/** What the prompt takes after the task token. */
export type TaskInput = 'none' | 'text' | 'region';

/** What a request of the task carries besides the image (open vocabulary: one prompt per class). */
export type RequestInput = 'none' | 'text' | 'classes' | 'region';

/** The API's task families: the oneof names of RunRequest / RunResponse, one typed RPC each. */
export const TASK_FAMILIES = ['caption', 'detect', 'open_vocabulary', 'phrase_grounding', 'segment', 'ocr', 'region'] as const;
export type TaskFamily = (typeof TASK_FAMILIES)[number];

/**
 * Families whose RPC picks the task with an enum field: the field, and the proto enum's prefix
 * (`<prefix>UNSPECIFIED` selects the default task).
 */
export const SELECTOR_FIELDS = {
  caption: { field: 'detail', enumPrefix: 'CAPTION_DETAIL_' },
  detect: { field: 'kind', enumPrefix: 'DETECT_KIND_' },
  region: { field: 'task', enumPrefix: 'REGION_TASK_' },
} as const;
export type SelectorFamily = keyof typeof SELECTOR_FIELDS;

/** One task; `selector` is the enum value (client spelling and proto name) that picks it in its family. */
interface CatalogueEntry {
  readonly token: string;
  readonly prompt: string;
  readonly input: TaskInput;
  readonly postProcess: PostProcessType;
  readonly family: TaskFamily;
  readonly requestInput: RequestInput;
  /** Friendly name (CLI `--task`). */
  readonly name: string;
  readonly selector?: { readonly value: string; readonly proto: string; readonly isDefault?: true };
}

/** The 15 tasks, in the order of the reference table. `{input}` marks where text or region tokens go. */
const CATALOGUE = [
  {
    token: '<OCR>',
    prompt: 'What is the text in the image?',
    input: 'none',
    postProcess: 'pure_text',
    family: 'ocr',
    requestInput: 'none',
    name: 'ocr',
  },
  {
    token: '<OCR_WITH_REGION>',
    prompt: 'What is the text in the image, with regions?',
    input: 'none',
    postProcess: 'ocr',
    family: 'ocr',
    requestInput: 'none',
    name: 'ocr-with-region',
  },
  {
    token: '<CAPTION>',
    prompt: 'What does the image describe?',
    input: 'none',
    postProcess: 'pure_text',
    family: 'caption',
    requestInput: 'none',
    name: 'caption',
    selector: { value: 'brief', proto: 'CAPTION_DETAIL_BRIEF', isDefault: true },
  },
  {
    token: '<DETAILED_CAPTION>',
    prompt: 'Describe in detail what is shown in the image.',
    input: 'none',
    postProcess: 'pure_text',
    family: 'caption',
    requestInput: 'none',
    name: 'detailed-caption',
    selector: { value: 'detailed', proto: 'CAPTION_DETAIL_DETAILED' },
  },
  {
    token: '<MORE_DETAILED_CAPTION>',
    prompt: 'Describe with a paragraph what is shown in the image.',
    input: 'none',
    postProcess: 'pure_text',
    family: 'caption',
    requestInput: 'none',
    name: 'more-detailed-caption',
    selector: { value: 'paragraph', proto: 'CAPTION_DETAIL_PARAGRAPH' },
  },
  {
    token: '<OD>',
    prompt: 'Locate the objects with category name in the image.',
    input: 'none',
    postProcess: 'description_with_bboxes',
    family: 'detect',
    requestInput: 'none',
    name: 'od',
    selector: { value: 'objects', proto: 'DETECT_KIND_OBJECTS', isDefault: true },
  },
  {
    token: '<DENSE_REGION_CAPTION>',
    prompt: 'Locate the objects in the image, with their descriptions.',
    input: 'none',
    postProcess: 'description_with_bboxes',
    family: 'detect',
    requestInput: 'none',
    name: 'dense-region-caption',
    selector: { value: 'dense_region_captions', proto: 'DETECT_KIND_DENSE_REGION_CAPTIONS' },
  },
  {
    token: '<REGION_PROPOSAL>',
    prompt: 'Locate the region proposals in the image.',
    input: 'none',
    postProcess: 'bboxes',
    family: 'detect',
    requestInput: 'none',
    name: 'region-proposal',
    selector: { value: 'region_proposals', proto: 'DETECT_KIND_REGION_PROPOSALS' },
  },
  {
    token: '<CAPTION_TO_PHRASE_GROUNDING>',
    prompt: 'Locate the phrases in the caption: {input}',
    input: 'text',
    postProcess: 'phrase_grounding',
    family: 'phrase_grounding',
    requestInput: 'text',
    name: 'phrase-grounding',
  },
  {
    token: '<REFERRING_EXPRESSION_SEGMENTATION>',
    prompt: 'Locate {input} in the image with mask',
    input: 'text',
    postProcess: 'polygons',
    family: 'segment',
    requestInput: 'text',
    name: 'referring-segmentation',
  },
  {
    token: '<REGION_TO_SEGMENTATION>',
    prompt: 'What is the polygon mask of region {input}',
    input: 'region',
    postProcess: 'polygons',
    family: 'segment',
    requestInput: 'region',
    name: 'region-segmentation',
  },
  {
    token: '<OPEN_VOCABULARY_DETECTION>',
    prompt: 'Locate {input} in the image.',
    input: 'text',
    postProcess: 'description_with_bboxes_or_polygons',
    family: 'open_vocabulary',
    requestInput: 'classes',
    name: 'open-vocabulary',
  },
  {
    token: '<REGION_TO_CATEGORY>',
    prompt: 'What is the region {input}?',
    input: 'region',
    postProcess: 'pure_text',
    family: 'region',
    requestInput: 'region',
    name: 'region-category',
    selector: { value: 'category', proto: 'REGION_TASK_CATEGORY', isDefault: true },
  },
  {
    token: '<REGION_TO_DESCRIPTION>',
    prompt: 'What does the region {input} describe?',
    input: 'region',
    postProcess: 'pure_text',
    family: 'region',
    requestInput: 'region',
    name: 'region-description',
    selector: { value: 'description', proto: 'REGION_TASK_DESCRIPTION' },
  },
  {
    token: '<REGION_TO_OCR>',
    prompt: 'What text is in the region {input}?',
    input: 'region',
    postProcess: 'pure_text',
    family: 'region',
    requestInput: 'region',
    name: 'region-ocr',
    selector: { value: 'ocr', proto: 'REGION_TASK_OCR' },
  },
] as const satisfies readonly CatalogueEntry[];

type Entry = (typeof CATALOGUE)[number];

export type TaskToken = Entry['token'];
/** A friendly task name (CLI `--task`), e.g. `od`. */
export type TaskName = Entry['name'];
/** The client's spelling of the enum value that picks a task within a selector family. */
export type SelectorValue<F extends SelectorFamily> = Extract<Entry, { family: F }>['selector']['value'];
/** The proto enum name of the value that picks a task within a selector family. */
export type SelectorProto<F extends SelectorFamily> = Extract<Entry, { family: F }>['selector']['proto'];

export interface TaskSpec extends CatalogueEntry {
  readonly token: TaskToken;
  readonly name: TaskName;
  /** The metrics `task` label: the token without brackets, lowercased (`<OD>` → `od`). */
  readonly label: string;
}

export const TASK_TOKENS: readonly TaskToken[] = Object.freeze(CATALOGUE.map((e) => e.token));

export const TASKS: Readonly<Record<TaskToken, TaskSpec>> = Object.freeze(
  Object.fromEntries(CATALOGUE.map((e) => [e.token, Object.freeze({ ...e, label: e.token.slice(1, -1).toLowerCase() })])) as Record<
    TaskToken,
    TaskSpec
  >,
);

export function isTaskToken(s: string): s is TaskToken {
  return Object.prototype.hasOwnProperty.call(TASKS, s);
}

/** Friendly task names and their tokens. */
export const TASK_NAMES: Readonly<Record<TaskName, TaskToken>> = Object.freeze(
  Object.fromEntries(CATALOGUE.map((e) => [e.name, e.token])) as Record<TaskName, TaskToken>,
);

/** The tasks a selector family picks from, each with its enum value; the default first. */
export function selectorTasks<F extends SelectorFamily>(
  family: F,
): Array<{ token: TaskToken; value: SelectorValue<F>; proto: SelectorProto<F>; isDefault: boolean }> {
  const out: Array<{ token: TaskToken; value: SelectorValue<F>; proto: SelectorProto<F>; isDefault: boolean }> = [];
  for (const e of CATALOGUE as readonly CatalogueEntry[]) {
    if (e.family !== family || !e.selector) continue;
    const item = {
      token: e.token as TaskToken,
      value: e.selector.value as SelectorValue<F>,
      proto: e.selector.proto as SelectorProto<F>,
      isDefault: e.selector.isDefault === true,
    };
    if (item.isDefault) out.unshift(item);
    else out.push(item);
  }
  return out;
}
