/** Task names and tokens → client requests (used by `florence2 predict --task`). */
import { strict as assert } from 'node:assert';
import { requestForTask, resolveTask, TASK_INPUT, TASK_NAMES, TASK_TOKENS, TaskInputError } from 'florence2-client';
import { TASKS } from 'florence2-client/catalogue';

describe('client tasks', () => {
  it('resolves friendly names and tokens (brackets and case optional)', () => {
    assert.equal(resolveTask('od'), '<OD>');
    assert.equal(resolveTask('<OD>'), '<OD>');
    assert.equal(resolveTask('ocr_with_region'), '<OCR_WITH_REGION>');
    assert.equal(resolveTask('Region-OCR'), '<REGION_TO_OCR>');
    assert.equal(resolveTask('more-detailed-caption'), '<MORE_DETAILED_CAPTION>');
    assert.equal(resolveTask('segmentation'), undefined);
    assert.equal(Object.keys(TASK_NAMES).length, 15);
    assert.deepEqual(new Set(Object.values(TASK_NAMES)), new Set(TASK_TOKENS));
  });

  it('task inputs agree with the server catalogue', () => {
    for (const token of TASK_TOKENS) {
      const server = TASKS[token].input;
      const client = TASK_INPUT[token];
      assert.equal(client === 'classes' ? 'text' : client, server, token);
    }
  });

  it('builds the request of each task, and refuses missing inputs', () => {
    const image = Buffer.from('x');
    assert.deepEqual(requestForTask('<MORE_DETAILED_CAPTION>', image), { image, family: 'caption', detail: 'paragraph' });
    assert.deepEqual(requestForTask('<REGION_PROPOSAL>', image, {}, { numBeams: 1 }), {
      image,
      options: { numBeams: 1 },
      family: 'detect',
      kind: 'region_proposals',
    });
    assert.deepEqual(requestForTask('<REGION_TO_SEGMENTATION>', image, { region: [1, 2, 3, 4] }), {
      image,
      family: 'segment',
      region: [1, 2, 3, 4],
    });
    assert.deepEqual(requestForTask('<OPEN_VOCABULARY_DETECTION>', image, { classes: ['a'] }), {
      image,
      family: 'open_vocabulary',
      classes: ['a'],
    });
    assert.throws(() => requestForTask('<CAPTION_TO_PHRASE_GROUNDING>', image, { text: ' ' }), TaskInputError);
    assert.throws(() => requestForTask('<REGION_TO_OCR>', image), /needs a region/);
    assert.throws(() => requestForTask('<OPEN_VOCABULARY_DETECTION>', image, { classes: [] }), /needs classes/);
  });
});
