/** Florence-2 task tokens and friendly names → client requests; every fact comes from the shared catalogue. */
import type { GenerationOptions, ImageInput, RegionInput, TaskRequest } from './types';
import { TASKS, TASK_NAMES, TASK_TOKENS, isTaskToken, type RequestInput, type TaskName, type TaskToken } from './catalogue';

export { TASK_TOKENS, TASK_NAMES };
export type { TaskToken, TaskName };

/** What a task needs besides the image. */
export type TaskInputKind = RequestInput;

/** The input each task takes. */
export const TASK_INPUT: Readonly<Record<TaskToken, TaskInputKind>> = Object.freeze(
  Object.fromEntries(TASK_TOKENS.map((t) => [t, TASKS[t].requestInput])) as Record<TaskToken, TaskInputKind>,
);

/** A task token (`<OD>`, case-insensitive, brackets optional) or a friendly name (`od`) → the token; undefined if unknown. */
export function resolveTask(nameOrToken: string): TaskToken | undefined {
  const s = nameOrToken.trim();
  const name = s.toLowerCase();
  if (Object.prototype.hasOwnProperty.call(TASK_NAMES, name)) return TASK_NAMES[name as TaskName];
  const token = `<${s.replace(/^<|>$/g, '').toUpperCase()}>`;
  return isTaskToken(token) ? token : undefined;
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
  const spec = TASKS[task];
  const need = <K extends keyof TaskInputs>(what: K): NonNullable<TaskInputs[K]> => {
    const v = inputs[what];
    if (v === undefined || (typeof v === 'string' && v.trim() === '') || (Array.isArray(v) && v.length === 0)) {
      throw new TaskInputError(`${task} needs ${what === 'classes' ? 'classes' : `a ${what}`}`);
    }
    return v;
  };
  const base = { image, ...(options ? { options } : {}) };
  switch (spec.family) {
    case 'caption':
      return { ...base, family: 'caption', detail: spec.selector!.value as TaskRequestOf<'caption'>['detail'] };
    case 'detect':
      return { ...base, family: 'detect', kind: spec.selector!.value as TaskRequestOf<'detect'>['kind'] };
    case 'region':
      return { ...base, family: 'region', region: need('region'), task: spec.selector!.value as TaskRequestOf<'region'>['task'] };
    case 'phrase_grounding':
      return { ...base, family: 'phrase_grounding', caption: need('text') };
    case 'segment':
      return spec.requestInput === 'region'
        ? { ...base, family: 'segment', region: need('region') }
        : { ...base, family: 'segment', referringExpression: need('text') };
    case 'open_vocabulary':
      return { ...base, family: 'open_vocabulary', classes: need('classes') };
    case 'ocr':
      return { ...base, family: 'ocr', withRegions: spec.postProcess === 'ocr' };
  }
}

type TaskRequestOf<F extends TaskRequest['family']> = Extract<TaskRequest, { family: F }>;
