import assert from 'node:assert/strict';
import {
  PromptError,
  constructPrompt,
  constructRegionPrompt,
  formatLocRegion,
  parseLocRegion,
  quantizeCoordinate,
  quantizeRegion,
  type PromptField,
} from '../../src/florence/prompts';
import { TASK_TOKENS, type TaskToken } from 'florence2-client/catalogue';

/** Asserts that `fn` throws a PromptError about `field` whose message names the field (and the task, if given). */
function throwsPromptError(fn: () => unknown, field: PromptField, task?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PromptError, `expected PromptError, got ${String(err)}`);
    assert.ok(err instanceof TypeError);
    assert.equal(err.name, 'PromptError');
    assert.equal(err.field, field);
    assert.match(err.message, new RegExp('`' + field));
    if (task !== undefined) assert.ok(err.message.includes(task), `message should name ${task}: ${err.message}`);
    return true;
  });
}

describe('florence/prompts', () => {
  describe('constructPrompt: every task (contract §2)', () => {
    // Written out literally, not read from TASKS, so a typo in the catalogue shows up here.
    const cases: Array<[TaskToken, string | undefined, string]> = [
      ['<OCR>', undefined, 'What is the text in the image?'],
      ['<OCR_WITH_REGION>', undefined, 'What is the text in the image, with regions?'],
      ['<CAPTION>', undefined, 'What does the image describe?'],
      ['<DETAILED_CAPTION>', undefined, 'Describe in detail what is shown in the image.'],
      ['<MORE_DETAILED_CAPTION>', undefined, 'Describe with a paragraph what is shown in the image.'],
      ['<OD>', undefined, 'Locate the objects with category name in the image.'],
      ['<DENSE_REGION_CAPTION>', undefined, 'Locate the objects in the image, with their descriptions.'],
      ['<REGION_PROPOSAL>', undefined, 'Locate the region proposals in the image.'],
      [
        '<CAPTION_TO_PHRASE_GROUNDING>',
        'A green car parked in front of a yellow building.',
        'Locate the phrases in the caption: A green car parked in front of a yellow building.',
      ],
      ['<REFERRING_EXPRESSION_SEGMENTATION>', 'a car', 'Locate a car in the image with mask'],
      [
        '<REGION_TO_SEGMENTATION>',
        '<loc_702><loc_575><loc_866><loc_772>',
        'What is the polygon mask of region <loc_702><loc_575><loc_866><loc_772>',
      ],
      ['<OPEN_VOCABULARY_DETECTION>', 'cat', 'Locate cat in the image.'],
      ['<REGION_TO_CATEGORY>', '<loc_52><loc_332><loc_932><loc_774>', 'What is the region <loc_52><loc_332><loc_932><loc_774>?'],
      [
        '<REGION_TO_DESCRIPTION>',
        '<loc_52><loc_332><loc_932><loc_774>',
        'What does the region <loc_52><loc_332><loc_932><loc_774> describe?',
      ],
      ['<REGION_TO_OCR>', '<loc_0><loc_0><loc_999><loc_999>', 'What text is in the region <loc_0><loc_0><loc_999><loc_999>?'],
    ];

    it('covers all 15 tasks', () => {
      assert.deepEqual(new Set(cases.map((c) => c[0])), new Set(TASK_TOKENS));
      assert.equal(cases.length, 15);
    });

    for (const [task, input, expected] of cases) {
      it(`${task}${input === undefined ? '' : ` + ${JSON.stringify(input)}`}`, () => {
        assert.equal(constructPrompt(task, input), expected);
      });
    }

    it("treats '' as no input for tasks without input (proto default)", () => {
      assert.equal(constructPrompt('<OD>', ''), 'Locate the objects with category name in the image.');
    });

    it('trims text input like HF native (strip), keeping interior whitespace', () => {
      assert.equal(constructPrompt('<REFERRING_EXPRESSION_SEGMENTATION>', '  a  car \n'), 'Locate a  car in the image with mask');
      assert.equal(constructPrompt('<OPEN_VOCABULARY_DETECTION>', '\twheels '), 'Locate wheels in the image.');
    });

    it('inserts text literally (no $& expansion, braces kept)', () => {
      assert.equal(constructPrompt('<OPEN_VOCABULARY_DETECTION>', "$& $' {input}"), "Locate $& $' {input} in the image.");
    });

    it('accepts a region string with surrounding whitespace', () => {
      assert.equal(
        constructPrompt('<REGION_TO_CATEGORY>', ' <loc_1><loc_2><loc_3><loc_4> '),
        'What is the region <loc_1><loc_2><loc_3><loc_4>?',
      );
    });
  });

  describe('constructPrompt errors', () => {
    it('rejects any text for tasks that take none, naming `text` and the task', () => {
      for (const task of ['<OD>', '<CAPTION>', '<OCR>', '<REGION_PROPOSAL>'] as const) {
        throwsPromptError(() => constructPrompt(task, 'a car'), 'text', task);
        throwsPromptError(() => constructPrompt(task, ' '), 'text', task);
      }
    });

    it('requires non-empty text for text tasks, naming `text` and the task', () => {
      for (const task of ['<CAPTION_TO_PHRASE_GROUNDING>', '<REFERRING_EXPRESSION_SEGMENTATION>', '<OPEN_VOCABULARY_DETECTION>'] as const) {
        throwsPromptError(() => constructPrompt(task), 'text', task);
        throwsPromptError(() => constructPrompt(task, ''), 'text', task);
        throwsPromptError(() => constructPrompt(task, ' \n\t'), 'text', task);
      }
    });

    it('rejects text that contains a task token', () => {
      throwsPromptError(() => constructPrompt('<OPEN_VOCABULARY_DETECTION>', '<OD>'), 'text', '<OPEN_VOCABULARY_DETECTION>');
      throwsPromptError(() => constructPrompt('<CAPTION_TO_PHRASE_GROUNDING>', 'a car <CAPTION>'), 'text', '<CAPTION_TO_PHRASE_GROUNDING>');
    });

    it('requires a well-formed region for region tasks, naming `region` and the task', () => {
      const bad = [
        undefined,
        '',
        '  ',
        'a car',
        '<loc_1><loc_2><loc_3>',
        '<loc_1><loc_2><loc_3><loc_4><loc_5>',
        '<loc_1><loc_2><loc_3><loc_1000>',
        '<loc_1><loc_2><loc_3><loc_04>',
        '<loc_1><loc_2><loc_3><loc_-4>',
        '<loc_1> <loc_2><loc_3><loc_4>',
        '<loc_1><loc_2><loc_3><loc_4> car',
        '<loc_10><loc_2><loc_3><loc_4>', // x1 > x2
        '<loc_1><loc_20><loc_3><loc_4>', // y1 > y2
      ];
      for (const region of bad) {
        throwsPromptError(() => constructPrompt('<REGION_TO_DESCRIPTION>', region), 'region', '<REGION_TO_DESCRIPTION>');
      }
    });

    it('rejects an unknown task, naming `task`', () => {
      throwsPromptError(() => constructPrompt('<FOO>' as TaskToken), 'task');
      throwsPromptError(() => constructPrompt('<od>' as TaskToken), 'task');
    });
  });

  describe('region quantization (contract §7.1)', () => {
    it('quantizes the HF example: 800×1200, [750,1121,851,1239] → <loc_937><loc_934><loc_999><loc_999>', () => {
      const bins = quantizeRegion({ x1: 750, y1: 1121, x2: 851, y2: 1239 }, { width: 800, height: 1200 });
      assert.deepEqual(bins, [937, 934, 999, 999]);
      assert.equal(formatLocRegion(bins), '<loc_937><loc_934><loc_999><loc_999>');
    });

    it('floors and clamps to [0, 999]', () => {
      assert.equal(quantizeCoordinate(0, 640), 0);
      assert.equal(quantizeCoordinate(0.639, 640), 0);
      assert.equal(quantizeCoordinate(0.64, 640), 1);
      assert.equal(quantizeCoordinate(639.99, 640), 999);
      assert.equal(quantizeCoordinate(640, 640), 999); // the right edge would be bin 1000
      assert.equal(quantizeCoordinate(-5, 640), 0);
    });

    it('parseLocRegion round-trips formatLocRegion', () => {
      assert.deepEqual(parseLocRegion('<loc_0><loc_5><loc_999><loc_5>'), [0, 5, 999, 5]);
      assert.equal(formatLocRegion(parseLocRegion('<loc_52><loc_332><loc_932><loc_774>')), '<loc_52><loc_332><loc_932><loc_774>');
    });

    it('constructRegionPrompt builds the region prompt from pixels', () => {
      // Bin centres of <loc_52><loc_332><loc_932><loc_774> on a 640×480 image quantize back to those bins.
      const size = { width: 640, height: 480 };
      const box = { x1: 33.6, y1: 159.6, x2: 596.8, y2: 371.76 };
      assert.equal(
        constructRegionPrompt('<REGION_TO_DESCRIPTION>', box, size),
        'What does the region <loc_52><loc_332><loc_932><loc_774> describe?',
      );
      assert.equal(constructRegionPrompt('<REGION_TO_CATEGORY>', box, size), 'What is the region <loc_52><loc_332><loc_932><loc_774>?');
      assert.equal(
        constructRegionPrompt('<REGION_TO_OCR>', { x1: 0, y1: 0, x2: 640, y2: 480 }, size),
        'What text is in the region <loc_0><loc_0><loc_999><loc_999>?',
      );
      assert.equal(
        constructRegionPrompt('<REGION_TO_SEGMENTATION>', { x1: 10, y1: 10, x2: 10, y2: 10 }, size),
        'What is the polygon mask of region <loc_15><loc_20><loc_15><loc_20>',
      );
    });

    it('constructRegionPrompt rejects bad regions, naming `region`', () => {
      const size = { width: 800, height: 1200 };
      const task = '<REGION_TO_CATEGORY>' as const;
      const bad = [
        { x1: 750, y1: 1121, x2: 851, y2: 1239 }, // the HF example box lies outside the image: rejected here
        { x1: Number.NaN, y1: 0, x2: 10, y2: 10 },
        { x1: 0, y1: 0, x2: Number.POSITIVE_INFINITY, y2: 10 },
        { x1: 0, y1: 0, x2: 10, y2: '10' as unknown as number },
        { x1: 20, y1: 0, x2: 10, y2: 10 },
        { x1: 0, y1: 20, x2: 10, y2: 10 },
        { x1: -1, y1: 0, x2: 10, y2: 10 },
        { x1: 0, y1: -0.5, x2: 10, y2: 10 },
        { x1: 0, y1: 0, x2: 800.5, y2: 10 },
        { x1: 0, y1: 0, x2: 10, y2: 1201 },
      ];
      for (const region of bad) throwsPromptError(() => constructRegionPrompt(task, region, size), 'region', task);
      throwsPromptError(() => constructRegionPrompt(task, null as never, size), 'region', task);
    });

    it('constructRegionPrompt rejects a region for tasks that do not take one', () => {
      const size = { width: 640, height: 480 };
      throwsPromptError(() => constructRegionPrompt('<OD>', { x1: 0, y1: 0, x2: 1, y2: 1 }, size), 'region', '<OD>');
      throwsPromptError(() => constructRegionPrompt('<OPEN_VOCABULARY_DETECTION>', { x1: 0, y1: 0, x2: 1, y2: 1 }, size), 'region');
    });

    it('constructRegionPrompt rejects a bad image size, naming `size`', () => {
      const box = { x1: 0, y1: 0, x2: 1, y2: 1 };
      throwsPromptError(() => constructRegionPrompt('<REGION_TO_OCR>', box, { width: 0, height: 480 }), 'size');
      throwsPromptError(() => constructRegionPrompt('<REGION_TO_OCR>', box, { width: 640, height: Number.NaN }), 'size');
    });
  });
});
