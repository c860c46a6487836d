/** Florence-2 task tokens and friendly names → client requests. */
import type { GenerationOptions, ImageInput, RegionInput, TaskRequest } from './types';

// The task catalogue is plain data with no runtime dependencies, so the client shares it.
export { TASK_TOKENS } from '../florence/tasks';
export type { TaskToken } from '../florence/tasks';
import { TASK_TOKENS, type TaskToken } from '../florence/tasks';

/** Friendly task names (CLI `--task`) and their tokens. */
export const TASK_NAMES = {
  caption: '<CAPTION>',
  'detailed-caption': '<DETAILED_CAPTION>',
  'more-detailed-caption': '<MORE_DETAILED_CAPTION>',
  od: '<OD>',
  'dense-region-caption': '<DENSE_REGION_CAPTION>',
  'region-proposal': '<REGION_PROPOSAL>',
  'phrase-grounding': '<CAPTION_TO_PHRASE_GROUNDING>',
  'referring-segmentation': '<REFERRING_EXPRESSION_SEGMENTATION>',
  'region-segmentation': '<REGION_TO_SEGMENTATION>',
  'open-vocabulary': '<OPEN_VOCABULARY_DETECTION>',
  'region-category': '<REGION_TO_CATEGORY>',
  'region-description': '<REGION_TO_DESCRIPTION>',
  'region-ocr': '<REGION_TO_OCR>',
  ocr: '<OCR>',
  'ocr-with-region': '<OCR_WITH_REGION>',
} as const satisfies Record<string, TaskToken>;

export type TaskName = keyof typeof TASK_NAMES;

/** What a task needs besides the image. */
export type TaskInputKind = 'none' | 'text' | 'classes' | 'region';

/** The input each task takes. */
export const TASK_INPUT: Readonly<Record<TaskToken, TaskInputKind>> = {
  '<OCR>': 'none',
  '<OCR_WITH_REGION>': 'none',
  '<CAPTION>': 'none',
  '<DETAILED_CAPTION>': 'none',
  '<MORE_DETAILED_CAPTION>': 'none',
  '<OD>': 'none',
  '<DENSE_REGION_CAPTION>': 'none',
  '<REGION_PROPOSAL>': 'none',
  '<CAPTION_TO_PHRASE_GROUNDING>': 'text',
  '<REFERRING_EXPRESSION_SEGMENTATION>': 'text',
  '<REGION_TO_SEGMENTATION>': 'region',
  '<OPEN_VOCABULARY_DETECTION>': 'classes',
  '<REGION_TO_CATEGORY>': 'region',
  '<REGION_TO_DESCRIPTION>': 'region',
  '<REGION_TO_OCR>': 'region',
};

/** A task token (`<OD>`, case-insensitive, brackets optional) or a friendly name (`od`) → the token; undefined if unknown. */
export function resolveTask(nameOrToken: string): TaskToken | undefined {
  const s = nameOrToken.trim();
  if (Object.prototype.hasOwnProperty.call(TASK_NAMES, s.toLowerCase())) return TASK_NAMES[s.toLowerCase() as TaskName];
  const token = `<${s.replace(/^<|>$/g, '').toUpperCase()}>`;
  return (TASK_TOKENS as readonly string[]).includes(token) ? (token as TaskToken) : undefined;
}

/** The inputs of a task given by token. */
export interface TaskInputs {
  /** Caption to ground, or referring expression. */
  text?: string;
  /** Open-vocabulary classes. */
  classes?: readonly string[];
  /** Region for the region tasks. */
  region?: RegionInput;
}

/** Thrown when a task is given the wrong inputs. */
export class TaskInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaskInputError';
  }
}

/** A task token and its inputs → the request for {@link Florence2Client.run}; throws TaskInputError when an input is missing. */
export function requestForTask(task: TaskToken, image: ImageInput, inputs: TaskInputs = {}, options?: GenerationOptions): TaskRequest {
  const need = (what: keyof TaskInputs) => {
    const v = inputs[what];
    if (v === undefined || (typeof v === 'string' && v.trim() === '') || (Array.isArray(v) && v.length === 0)) throw new TaskInputError(`${task} needs ${what === 'classes' ? 'classes' : `a ${what}`}`);
    return v;
  };
  const base = { image, ...(options ? { options } : {}) };
  switch (task) {
    case '<CAPTION>':
      return { ...base, family: 'caption', detail: 'brief' };
    case '<DETAILED_CAPTION>':
      return { ...base, family: 'caption', detail: 'detailed' };
    case '<MORE_DETAILED_CAPTION>':
      return { ...base, family: 'caption', detail: 'paragraph' };
    case '<OD>':
      return { ...base, family: 'detect', kind: 'objects' };
    case '<DENSE_REGION_CAPTION>':
      return { ...base, family: 'detect', kind: 'dense_region_captions' };
    case '<REGION_PROPOSAL>':
      return { ...base, family: 'detect', kind: 'region_proposals' };
    case '<CAPTION_TO_PHRASE_GROUNDING>':
      return { ...base, family: 'phrase_grounding', caption: need('text') as string };
    case '<REFERRING_EXPRESSION_SEGMENTATION>':
      return { ...base, family: 'segment', referringExpression: need('text') as string };
    case '<REGION_TO_SEGMENTATION>':
      return { ...base, family: 'segment', region: need('region') as RegionInput };
    case '<OPEN_VOCABULARY_DETECTION>':
      return { ...base, family: 'open_vocabulary', classes: need('classes') as readonly string[] };
    case '<REGION_TO_CATEGORY>':
      return { ...base, family: 'region', region: need('region') as RegionInput, task: 'category' };
    case '<REGION_TO_DESCRIPTION>':
      return { ...base, family: 'region', region: need('region') as RegionInput, task: 'description' };
    case '<REGION_TO_OCR>':
      return { ...base, family: 'region', region: need('region') as RegionInput, task: 'ocr' };
    case '<OCR>':
      return { ...base, family: 'ocr', withRegions: false };
    case '<OCR_WITH_REGION>':
      return { ...base, family: 'ocr', withRegions: true };
  }
}
