/**
 * The Florence-2 task catalogue (contract §2): each task token, the prompt the tokenizer sees, whether
 * the task takes text (or a region) after the token, and how its generated text is parsed. Shared by
 * prompt construction, request validation and post-processing.
 */

/** How the generated text of a task is parsed (the reference's `tasks_answer_post_processing_type`). */
export type PostProcessType =
  | 'pure_text'
  | 'ocr'
  | 'description_with_bboxes'
  | 'bboxes'
  | 'phrase_grounding'
  | 'polygons'
  | 'description_with_bboxes_or_polygons';

/** What a task accepts after its token. */
export type TaskInput = 'none' | 'text' | 'region';

export interface TaskSpec {
  /** The task token, e.g. `<OD>`. */
  token: TaskToken;
  /** The prompt; `{input}` marks where the text or region tokens go. */
  prompt: string;
  input: TaskInput;
  postProcess: PostProcessType;
}

export const TASK_TOKENS = [
  '<OCR>',
  '<OCR_WITH_REGION>',
  '<CAPTION>',
  '<DETAILED_CAPTION>',
  '<MORE_DETAILED_CAPTION>',
  '<OD>',
  '<DENSE_REGION_CAPTION>',
  '<REGION_PROPOSAL>',
  '<CAPTION_TO_PHRASE_GROUNDING>',
  '<REFERRING_EXPRESSION_SEGMENTATION>',
  '<REGION_TO_SEGMENTATION>',
  '<OPEN_VOCABULARY_DETECTION>',
  '<REGION_TO_CATEGORY>',
  '<REGION_TO_DESCRIPTION>',
  '<REGION_TO_OCR>',
] as const;

export type TaskToken = (typeof TASK_TOKENS)[number];

const spec = (token: TaskToken, prompt: string, input: TaskInput, postProcess: PostProcessType): TaskSpec => ({
  token,
  prompt,
  input,
  postProcess,
});

/** The 15 tasks, in the order of the reference table. */
export const TASKS: Readonly<Record<TaskToken, TaskSpec>> = Object.freeze({
  '<OCR>': spec('<OCR>', 'What is the text in the image?', 'none', 'pure_text'),
  '<OCR_WITH_REGION>': spec('<OCR_WITH_REGION>', 'What is the text in the image, with regions?', 'none', 'ocr'),
  '<CAPTION>': spec('<CAPTION>', 'What does the image describe?', 'none', 'pure_text'),
  '<DETAILED_CAPTION>': spec('<DETAILED_CAPTION>', 'Describe in detail what is shown in the image.', 'none', 'pure_text'),
  '<MORE_DETAILED_CAPTION>': spec(
    '<MORE_DETAILED_CAPTION>',
    'Describe with a paragraph what is shown in the image.',
    'none',
    'pure_text',
  ),
  '<OD>': spec('<OD>', 'Locate the objects with category name in the image.', 'none', 'description_with_bboxes'),
  '<DENSE_REGION_CAPTION>': spec(
    '<DENSE_REGION_CAPTION>',
    'Locate the objects in the image, with their descriptions.',
    'none',
    'description_with_bboxes',
  ),
  '<REGION_PROPOSAL>': spec('<REGION_PROPOSAL>', 'Locate the region proposals in the image.', 'none', 'bboxes'),
  '<CAPTION_TO_PHRASE_GROUNDING>': spec(
    '<CAPTION_TO_PHRASE_GROUNDING>',
    'Locate the phrases in the caption: {input}',
    'text',
    'phrase_grounding',
  ),
  '<REFERRING_EXPRESSION_SEGMENTATION>': spec(
    '<REFERRING_EXPRESSION_SEGMENTATION>',
    'Locate {input} in the image with mask',
    'text',
    'polygons',
  ),
  '<REGION_TO_SEGMENTATION>': spec(
    '<REGION_TO_SEGMENTATION>',
    'What is the polygon mask of region {input}',
    'region',
    'polygons',
  ),
  '<OPEN_VOCABULARY_DETECTION>': spec(
    '<OPEN_VOCABULARY_DETECTION>',
    'Locate {input} in the image.',
    'text',
    'description_with_bboxes_or_polygons',
  ),
  '<REGION_TO_CATEGORY>': spec('<REGION_TO_CATEGORY>', 'What is the region {input}?', 'region', 'pure_text'),
  '<REGION_TO_DESCRIPTION>': spec('<REGION_TO_DESCRIPTION>', 'What does the region {input} describe?', 'region', 'pure_text'),
  '<REGION_TO_OCR>': spec('<REGION_TO_OCR>', 'What text is in the region {input}?', 'region', 'pure_text'),
});

export function isTaskToken(s: string): s is TaskToken {
  return Object.prototype.hasOwnProperty.call(TASKS, s);
}
