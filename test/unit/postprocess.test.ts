import { strict as assert } from 'node:assert';
import { dequantizeBin, quantizeCoordinate } from '../../src/florence/geometry';
import { formatLocRegion, quantizeRegion } from '../../src/florence/prompts';
import {
  postProcess,
  postProcessWithScores,
  type BoxesResult,
  type OpenVocabularyResult,
  type PolygonsResult,
  type PostProcessResult,
  type QuadBoxesResult,
  type ScoredBoxesResult,
  type ScoredOpenVocabularyResult,
  type ScoredPolygonsResult,
  type ScoredPostProcessResult,
  type ScoredQuadBoxesResult,
  type TokenPiece,
} from '../../src/florence/postprocess';
import { TASKS, TASK_TOKENS, type TaskToken } from 'florence2-client/catalogue';

const CAR = { width: 640, height: 480 };
const BOOK = { width: 403, height: 500 };

/** Asserts two nested number arrays have the same shape and differ by at most `tol` per element. */
function assertClose(actual: unknown, expected: unknown, tol = 1e-3, path = '$'): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertClose((actual as unknown[])[i], e, tol, `${path}[${i}]`));
    return;
  }
  assert.equal(typeof actual, 'number', `${path}: expected a number, got ${JSON.stringify(actual)}`);
  const a = actual as number;
  const e = expected as number;
  assert.ok(Math.abs(a - e) <= tol, `${path}: ${a} is not within ${tol} of ${e}`);
}

/** Shorthand for `<loc_a><loc_b>...`. */
const locs = (...bins: number[]): string => bins.map((b) => `<loc_${b}>`).join('');

/**
 * Splits text as a tokenizer would for the tests: each added / special token is one piece, the
 * rest goes in `chunk`-character fragments. Log-probabilities are small deterministic negatives.
 */
function toPieces(text: string, chunk = 3): TokenPiece[] {
  const parts: string[] = [];
  for (const part of text.split(/(<loc_\d+>|<\/?s>|<pad>|<\/?poly>|<sep>)/)) {
    if (part === '') continue;
    if (part.startsWith('<') && part.endsWith('>')) parts.push(part);
    else for (let i = 0; i < part.length; i += chunk) parts.push(part.slice(i, i + chunk));
  }
  return parts.map((text, i) => ({ text, logprob: -0.05 * ((i % 5) + 1) }));
}

/** Builds pieces from `[text, logprob]` pairs. */
const pieces = (...list: Array<[string, number]>): TokenPiece[] => list.map(([text, logprob]) => ({ text, logprob }));

/** The parsed value of a scored result, i.e. without its score arrays. */
function withoutScores(r: ScoredPostProcessResult): PostProcessResult {
  if (typeof r === 'string') return r;
  const copy: Record<string, unknown> = { ...r };
  delete copy.scores;
  delete copy.bboxes_scores;
  delete copy.polygons_scores;
  return copy as unknown as PostProcessResult;
}

/** The score arrays of a scored result, concatenated. */
function allScores(r: ScoredPostProcessResult): number[] {
  if (typeof r === 'string') return [];
  if ('scores' in r) return r.scores;
  return [...r.bboxes_scores, ...r.polygons_scores];
}

// Contract §8 worked examples: [name, task, text, size].
const OD_TEXT =
  '</s><s><s><s>car<loc_53><loc_333><loc_933><loc_774>door<loc_712><loc_203><loc_906><loc_545>' +
  'wheel<loc_704><loc_576><loc_866><loc_772><loc_149><loc_584><loc_310><loc_773></s>';
const DENSE_TEXT =
  '</s><s>turquoise Volkswagen Beetle<loc_52><loc_333><loc_932><loc_774>' +
  'wheel<loc_704><loc_576><loc_864><loc_772><loc_148><loc_584><loc_308><loc_773></s>';
const GROUNDING_TEXT = '</s><s><s><s>A green car<loc_54><loc_330><loc_911><loc_780>a yellow building<loc_0><loc_8><loc_998><loc_635></s>';
const OCR_PLAIN = 'CUDAFOR ENGINEERSAn Introduction to High-PerformanceParallel ComputingDUANE STORTIMETE YURTOGLU';
const OCR_REGION_TEXT =
  '</s><s><s><s>CUDA' +
  locs(414, 100, 932, 100, 932, 229, 414, 229) +
  'FOR ENGINEERS' +
  locs(359, 241, 932, 241, 932, 298, 359, 298) +
  'An Introduction to High-Performance' +
  locs(287, 330, 934, 332, 934, 368, 287, 366) +
  '</s>';
const SEGMENTATION_TEXT = '</s><s>' + locs(279, 379, 282, 379, 290, 372, 293, 372, 300, 380, 310, 420, 642, 460) + '</s>';

const WORKED: Array<[string, TaskToken, string, { width: number; height: number }]> = [
  ['1 CAPTION', '<CAPTION>', '</s><s>A green car parked in front of a yellow building.</s>', CAR],
  ['2 OD', '<OD>', OD_TEXT, CAR],
  ['4 DENSE_REGION_CAPTION', '<DENSE_REGION_CAPTION>', DENSE_TEXT, CAR],
  ['6 CAPTION_TO_PHRASE_GROUNDING', '<CAPTION_TO_PHRASE_GROUNDING>', GROUNDING_TEXT, CAR],
  ['8 OCR', '<OCR>', `</s><s>${OCR_PLAIN}</s>`, BOOK],
  ['9 OCR_WITH_REGION', '<OCR_WITH_REGION>', OCR_REGION_TEXT, BOOK],
  ['10 REFERRING_EXPRESSION_SEGMENTATION', '<REFERRING_EXPRESSION_SEGMENTATION>', SEGMENTATION_TEXT, CAR],
  ['14 REGION_TO_CATEGORY', '<REGION_TO_CATEGORY>', '</s><s>car<loc_52><loc_332><loc_932><loc_774></s>', CAR],
  ['14 REGION_TO_DESCRIPTION', '<REGION_TO_DESCRIPTION>', '</s><s>turquoise Volkswagen Beetle<loc_52><loc_332><loc_932><loc_774></s>', CAR],
];

describe('florence/postprocess', () => {
  describe('worked examples (contract §8)', () => {
    it('1: CAPTION removes </s> and <s>', () => {
      assert.equal(
        postProcess('<CAPTION>', '</s><s>A green car parked in front of a yellow building.</s>', CAR),
        'A green car parked in front of a yellow building.',
      );
    });

    it('2: OD, one label per box, extra loc groups join the previous phrase', () => {
      const r = postProcess('<OD>', OD_TEXT, CAR) as BoxesResult;
      assert.deepEqual(Object.keys(r), ['bboxes', 'labels']);
      assert.deepEqual(r.labels, ['car', 'door', 'wheel', 'wheel']);
      assertClose(r.bboxes, [
        [34.24, 160.08, 597.44, 371.76],
        [456.0, 97.68, 580.16, 261.84],
        [450.88, 276.72, 554.56, 370.8],
        [95.68, 280.56, 198.72, 371.28],
      ]);
    });

    it('4: DENSE_REGION_CAPTION', () => {
      const r = postProcess('<DENSE_REGION_CAPTION>', DENSE_TEXT, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['turquoise Volkswagen Beetle', 'wheel', 'wheel']);
      assertClose(r.bboxes, [
        [33.6, 160.08, 596.8, 371.76],
        [450.88, 276.72, 553.28, 370.8],
        [95.04, 280.56, 197.44, 371.28],
      ]);
    });

    it('6: CAPTION_TO_PHRASE_GROUNDING', () => {
      const r = postProcess('<CAPTION_TO_PHRASE_GROUNDING>', GROUNDING_TEXT, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['A green car', 'a yellow building']);
      assertClose(r.bboxes, [
        [34.88, 158.64, 583.36, 374.64],
        [0.32, 4.08, 639.04, 305.04],
      ]);
    });

    it('8: OCR is the text without tags, lines concatenated', () => {
      assert.equal(postProcess('<OCR>', `</s><s>${OCR_PLAIN}</s>`, BOOK), OCR_PLAIN);
    });

    it('9: OCR_WITH_REGION, quad boxes and labels without the stray </s>', () => {
      const r = postProcess('<OCR_WITH_REGION>', OCR_REGION_TEXT, BOOK) as QuadBoxesResult;
      assert.deepEqual(Object.keys(r), ['quad_boxes', 'labels']);
      assert.deepEqual(r.labels, ['CUDA', 'FOR ENGINEERS', 'An Introduction to High-Performance']);
      assertClose(r.quad_boxes, [
        [167.0435, 50.25, 375.7975, 50.25, 375.7975, 114.75, 167.0435, 114.75],
        [144.8785, 120.75, 375.7975, 120.75, 375.7975, 149.25, 144.8785, 149.25],
        [115.8625, 165.25, 376.6035, 166.25, 376.6035, 184.25, 115.8625, 183.25],
      ]);
    });

    it('10: REFERRING_EXPRESSION_SEGMENTATION, 3 levels of nesting, empty label', () => {
      const r = postProcess('<REFERRING_EXPRESSION_SEGMENTATION>', SEGMENTATION_TEXT, CAR) as PolygonsResult;
      assert.deepEqual(Object.keys(r), ['polygons', 'labels']);
      assert.deepEqual(r.labels, ['']);
      assert.equal(r.polygons.length, 1);
      assert.equal(r.polygons[0].length, 1);
      assert.equal(r.polygons[0][0].length, 14);
      assertClose(r.polygons[0][0].slice(0, 8), [178.88, 182.16, 180.8, 182.16, 185.92, 178.8, 187.84, 178.8]);
      assertClose(r.polygons[0][0].slice(12), [411.2, 221.04]); // <loc_642><loc_460>
    });

    it('14: REGION_TO_CATEGORY / REGION_TO_DESCRIPTION keep <loc_N> verbatim', () => {
      assert.equal(
        postProcess('<REGION_TO_CATEGORY>', '</s><s>car<loc_52><loc_332><loc_932><loc_774></s>', CAR),
        'car<loc_52><loc_332><loc_932><loc_774>',
      );
      assert.equal(
        postProcess('<REGION_TO_DESCRIPTION>', '</s><s>turquoise Volkswagen Beetle<loc_52><loc_332><loc_932><loc_774></s>', CAR),
        'turquoise Volkswagen Beetle<loc_52><loc_332><loc_932><loc_774>',
      );
    });
  });

  describe('pure_text', () => {
    it('also removes <pad> and trims surrounding whitespace', () => {
      assert.equal(postProcess('<DETAILED_CAPTION>', '</s><s> A cat on a mat. </s><pad><pad>', CAR), 'A cat on a mat.');
    });

    it('keeps interior text and non-ASCII characters as generated', () => {
      assert.equal(postProcess('<OCR>', '</s><s>Café  Zürich</s>', CAR), 'Café  Zürich');
    });

    it('every pure_text task returns a string', () => {
      for (const task of TASK_TOKENS) {
        const r = postProcess(task, '</s><s>x</s>', CAR);
        assert.equal(typeof r === 'string', TASKS[task].postProcess === 'pure_text', task);
      }
    });
  });

  describe('description_with_bboxes (RC rules)', () => {
    // RC, HFN and TJS would label this box `loc_3>dog`: the phrase regex restarts inside <loc_3>.
    it('drops text not followed by 4 loc tokens and trailing loc tokens past the last full box', () => {
      const r = postProcess('<OD>', `</s><s>cat${locs(1, 2, 3)}dog${locs(10, 20, 30, 40, 50, 60)}</s>`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['dog']);
      assertClose(r.bboxes, [[6.72, 9.84, 19.52, 19.44]]);
    });

    it('ASCII-filters labels, then trims them', () => {
      const r = postProcess('<OD>', `café au lait${locs(0, 0, 1, 1)}é car${locs(2, 2, 3, 3)}`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['caf au lait', 'car']);
    });

    it('removes <obj> and <ground> markers instead of letting them split a phrase', () => {
      const r = postProcess('<OD>', `</s><s><obj>car<ground>${locs(0, 0, 1, 1)}</s>`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['car']);
    });

    it('skips a phrase whose label spans a newline (Python `.` semantics)', () => {
      const r = postProcess('<OD>', `foo\nbar${locs(0, 0, 1, 1)}\ncat${locs(2, 2, 3, 3)}`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['cat']);
      assert.equal(r.bboxes.length, 1);
    });

    it('no phrases gives empty arrays', () => {
      assert.deepEqual(postProcess('<OD>', '</s><s>nothing here</s>', CAR), { bboxes: [], labels: [] });
    });
  });

  describe('bboxes (REGION_PROPOSAL, allow_empty_phrase)', () => {
    it('takes every loc run, ignores text, labels are empty', () => {
      const text = `</s><s>car${locs(10, 20, 30, 40, 50, 60, 70, 80)}x${locs(100, 200, 300, 400, 5)}</s>`;
      const r = postProcess('<REGION_PROPOSAL>', text, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['', '', '']);
      assertClose(r.bboxes, [
        [6.72, 9.84, 19.52, 19.44],
        [32.32, 29.04, 45.12, 38.64],
        [64.32, 96.24, 192.32, 192.24],
      ]);
    });
  });

  describe('phrase_grounding', () => {
    it('drops blacklisted phrases (after trimming) and keeps the others', () => {
      const text =
        `</s><s>it${locs(1, 2, 3, 4)} a dog${locs(10, 20, 30, 40)}the image${locs(5, 6, 7, 8)}` +
        ` those ${locs(9, 9, 9, 9)}It${locs(11, 12, 13, 14)}</s>`;
      const r = postProcess('<CAPTION_TO_PHRASE_GROUNDING>', text, CAR) as BoxesResult;
      // The blacklist is case-sensitive as in RC: 'It' is not in it.
      assert.deepEqual(r.labels, ['a dog', 'It']);
      assertClose(r.bboxes, [
        [6.72, 9.84, 19.52, 19.44],
        [7.36, 6.0, 8.64, 6.96],
      ]);
    });

    it('one label per box when a phrase has several boxes; ASCII filter applies', () => {
      const r = postProcess('<CAPTION_TO_PHRASE_GROUNDING>', `</s><s>two wheels™${locs(1, 1, 2, 2, 3, 3, 4, 4)}</s>`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['two wheels', 'two wheels']);
      assert.equal(r.bboxes.length, 2);
    });

    it('a blacklisted phrase after an incomplete box group is still dropped (loc_N> head removed)', () => {
      const r = postProcess('<CAPTION_TO_PHRASE_GROUNDING>', `dog${locs(1, 2)}it${locs(3, 4, 5, 6)}`, CAR) as BoxesResult;
      assert.deepEqual(r, { bboxes: [], labels: [] });
    });

    it('the blacklist is not applied to OD', () => {
      const r = postProcess('<OD>', `it${locs(1, 2, 3, 4)}`, CAR) as BoxesResult;
      assert.deepEqual(r.labels, ['it']);
    });
  });

  describe('ocr', () => {
    it('keeps non-ASCII text, trims labels and drops text without 8 loc tokens', () => {
      const text = `</s><s> Café ${locs(1, 2, 3, 4, 5, 6, 7, 8)}tail${locs(1, 2, 3, 4)}</s>`;
      const r = postProcess('<OCR_WITH_REGION>', text, BOOK) as QuadBoxesResult;
      assert.deepEqual(r.labels, ['Café']);
      assertClose(r.quad_boxes, [[0.6045, 1.25, 1.4105, 2.25, 2.2165, 3.25, 3.0225, 4.25]]);
    });
  });

  describe('polygons', () => {
    it('<poly> groups are instances, <sep> splits polygons, an odd last coordinate is dropped', () => {
      const text =
        '</s><s><poly>' + locs(10, 20, 30, 40, 50) + '</poly><poly>' + locs(100, 200, 300, 400) + '<sep>' + locs(500, 600) + '</poly></s>';
      const r = postProcess('<REGION_TO_SEGMENTATION>', text, CAR) as PolygonsResult;
      assert.deepEqual(r.labels, ['', '']);
      assertClose(r.polygons, [
        [[6.72, 9.84, 19.52, 19.44]],
        [
          [64.32, 96.24, 192.32, 192.24],
          [320.32, 288.24],
        ],
      ]);
    });

    it('without <poly>, the whole run is one instance split on <sep>', () => {
      const text = '</s><s>' + locs(1, 2, 3, 4, 5, 6) + '<sep>' + locs(7, 8, 9) + '</s>';
      const r = postProcess('<REFERRING_EXPRESSION_SEGMENTATION>', text, CAR) as PolygonsResult;
      assert.deepEqual(r.labels, ['']);
      assertClose(r.polygons, [
        [
          [0.96, 1.2, 2.24, 2.16, 3.52, 3.12],
          [4.8, 4.08],
        ],
      ]);
    });

    it('a run shorter than 4 tokens is ignored', () => {
      assert.deepEqual(postProcess('<REGION_TO_SEGMENTATION>', `</s><s>${locs(1, 2, 3)}</s>`, CAR), {
        polygons: [],
        labels: [],
      });
    });
  });

  describe('description_with_bboxes_or_polygons (OPEN_VOCABULARY_DETECTION)', () => {
    it('without <poly>: boxes only', () => {
      const r = postProcess('<OPEN_VOCABULARY_DETECTION>', `</s><s>a car${locs(53, 333, 933, 774)}</s>`, CAR) as OpenVocabularyResult;
      assert.deepEqual(Object.keys(r), ['bboxes', 'bboxes_labels', 'polygons', 'polygons_labels']);
      assert.deepEqual(r.bboxes_labels, ['a car']);
      assertClose(r.bboxes, [[34.24, 160.08, 597.44, 371.76]]);
      assert.deepEqual(r.polygons, []);
      assert.deepEqual(r.polygons_labels, []);
    });

    it('with <poly>: polygons only, label from the text before the run (ASCII-filtered)', () => {
      const text = `</s><s>naïve cat<poly>${locs(1, 2, 3, 4)}</poly><poly>${locs(5, 6, 7, 8)}</poly></s>`;
      const r = postProcess('<OPEN_VOCABULARY_DETECTION>', text, CAR) as OpenVocabularyResult;
      assert.deepEqual(r.bboxes, []);
      assert.deepEqual(r.bboxes_labels, []);
      assert.deepEqual(r.polygons_labels, ['nave cat', 'nave cat']);
      assertClose(r.polygons, [[[0.96, 1.2, 2.24, 2.16]], [[3.52, 3.12, 4.8, 4.08]]]);
    });

    it('with <poly>, a bare loc run without text is not an instance (allow_empty_phrase false)', () => {
      const text = `</s><s>${locs(1, 2, 3, 4)}dog<poly>${locs(5, 6, 7, 8)}</poly></s>`;
      const r = postProcess('<OPEN_VOCABULARY_DETECTION>', text, CAR) as OpenVocabularyResult;
      assert.deepEqual(r.polygons_labels, ['dog']);
      assert.equal(r.polygons.length, 1);
    });
  });

  describe('quantization (contract §7.1)', () => {
    it('HFN example: 800×1200, [750, 1121, 851, 1239] → bins [937, 934, 999, 999]', () => {
      const size = { width: 800, height: 1200 };
      assert.deepEqual(
        [quantizeCoordinate(750, 800), quantizeCoordinate(1121, 1200), quantizeCoordinate(851, 800), quantizeCoordinate(1239, 1200)],
        [937, 934, 999, 999],
      );
      assert.equal(formatLocRegion(quantizeRegion({ x1: 750, y1: 1121, x2: 851, y2: 1239 }, size)), '<loc_937><loc_934><loc_999><loc_999>');
      // Dequantized and truncated as HFN does: [750, 1121, 799, 1199].
      assert.deepEqual(
        [dequantizeBin(937, 800), dequantizeBin(934, 1200), dequantizeBin(999, 800), dequantizeBin(999, 1200)].map(Math.trunc),
        [750, 1121, 799, 1199],
      );
    });

    it('clamps below 0 and honours a custom bin count', () => {
      assert.equal(quantizeCoordinate(-5, 640), 0);
      assert.equal(quantizeCoordinate(639.9, 640), 999);
      assert.equal(quantizeCoordinate(50, 100, 10), 5);
      assertClose(dequantizeBin(5, 100, 10), 55, 1e-9);
    });

    it('dequantizes to the bin centre in double precision', () => {
      assert.equal(dequantizeBin(53, 640), 34.24);
      assert.equal(dequantizeBin(0, 1000), 0.5);
    });

    it('rejects non-finite coordinates and non-positive sizes', () => {
      assert.throws(() => quantizeCoordinate(Number.NaN, 640), RangeError);
      assert.throws(() => quantizeCoordinate(10, 0), RangeError);
      assert.throws(() => quantizeRegion({ x1: 0, y1: 0, x2: Infinity, y2: 1 }, CAR), RangeError);
      assert.throws(() => postProcess('<OD>', '', { width: 0, height: 480 }), RangeError);
      assert.throws(() => postProcessWithScores('<OD>', [], { width: 640, height: Number.NaN }), RangeError);
    });
  });

  describe('postProcessWithScores', () => {
    it('each box: exp(mean logprob of its label tokens and its own 4 loc tokens); shared labels', () => {
      const r = postProcessWithScores(
        '<OD>',
        pieces(
          ['</s>', -5],
          ['<s>', -5],
          ['wheel', -0.2],
          ['<loc_704>', -0.1],
          ['<loc_576>', -0.1],
          ['<loc_866>', -0.1],
          ['<loc_772>', -0.1],
          ['<loc_149>', -0.3],
          ['<loc_584>', -0.3],
          ['<loc_310>', -0.3],
          ['<loc_773>', -0.3],
          ['</s>', -7],
        ),
        CAR,
      ) as ScoredBoxesResult;
      assert.deepEqual(r.labels, ['wheel', 'wheel']);
      assert.deepEqual(Object.keys(r), ['bboxes', 'labels', 'scores']);
      assertClose(r.scores, [Math.exp(-0.6 / 5), Math.exp(-1.4 / 5)], 1e-12);
    });

    it('multi-token labels count every overlapping piece, not whitespace-only pieces', () => {
      const r = postProcessWithScores(
        '<DENSE_REGION_CAPTION>',
        pieces(
          ['</s>', -9],
          ['<s>', -9],
          [' ', -3],
          ['tur', -0.5],
          ['quoise', -0.5],
          [' Volkswagen', -1.0],
          [' Beetle', -0.3],
          ['<loc_52>', 0],
          ['<loc_333>', -0.1],
          ['<loc_932>', 0],
          ['<loc_774>', -0.1],
          [' wheel', -0.4],
          ['<loc_704>', -0.2],
          ['<loc_576>', -0.2],
          ['<loc_864>', -0.2],
          ['<loc_772>', -0.2],
        ),
        CAR,
      ) as ScoredBoxesResult;
      assert.deepEqual(r.labels, ['turquoise Volkswagen Beetle', 'wheel']);
      assertClose(r.scores, [Math.exp(-2.5 / 8), Math.exp(-1.2 / 5)], 1e-12);
    });

    it('a phrase restarting inside an incomplete box group does not count that loc token', () => {
      const r = postProcessWithScores(
        '<OD>',
        pieces(['dog', -1], ...locPieces([1, 2, 3], -9), ['cat', -0.5], ...locPieces([4, 5, 6, 7], -0.1)),
        CAR,
      ) as ScoredBoxesResult;
      assert.deepEqual(r.labels, ['cat']);
      assertClose(r.scores, [Math.exp(-0.9 / 5)], 1e-12);
    });

    it('OCR: label tokens + 8 loc tokens; </s> does not count', () => {
      const r = postProcessWithScores(
        '<OCR_WITH_REGION>',
        pieces(['</s>', -10], ['<s>', -10], ['CU', -0.4], ['DA', -0.2], ...locPieces([414, 100, 932, 100, 932, 229, 414, 229], -0.05)),
        BOOK,
      ) as ScoredQuadBoxesResult;
      assert.deepEqual(r.labels, ['CUDA']);
      assertClose(r.scores, [Math.exp(-1.0 / 10)], 1e-12);
    });

    it('polygons: loc tokens of all polygons of an instance (odd one included), not <poly>/<sep>', () => {
      const r = postProcessWithScores(
        '<REGION_TO_SEGMENTATION>',
        pieces(
          ['</s>', -1],
          ['<s>', -1],
          ['<poly>', -5],
          ...locPieces([10, 20, 30, 40, 50], -0.1),
          ['</poly>', -5],
          ['<poly>', -5],
          ...locPieces([1, 2, 3, 4], -0.2),
          ['<sep>', -9],
          ...locPieces([5, 6], -0.5),
          ['</poly>', -5],
        ),
        CAR,
      ) as ScoredPolygonsResult;
      assert.equal(r.polygons.length, 2);
      assertClose(r.scores, [Math.exp(-0.1), Math.exp(-1.8 / 6)], 1e-12);
    });

    it('open vocabulary: bboxes_scores or polygons_scores', () => {
      const boxes = postProcessWithScores(
        '<OPEN_VOCABULARY_DETECTION>',
        pieces(['a', -0.3], [' car', -0.3], ...locPieces([1, 2, 3, 4], 0)),
        CAR,
      ) as ScoredOpenVocabularyResult;
      assertClose(boxes.bboxes_scores, [Math.exp(-0.6 / 6)], 1e-12);
      assert.deepEqual(boxes.polygons_scores, []);
      const polys = postProcessWithScores(
        '<OPEN_VOCABULARY_DETECTION>',
        pieces(['cat', -1], ['<poly>', -4], ...locPieces([1, 2, 3, 4], -0.25), ['</poly>', -4]),
        CAR,
      ) as ScoredOpenVocabularyResult;
      assert.deepEqual(polys.bboxes_scores, []);
      assertClose(polys.polygons_scores, [Math.exp(-2 / 5)], 1e-12);
    });

    it('grounding: a blacklisted phrase gets no score; scores align with boxes', () => {
      const r = postProcessWithScores(
        '<CAPTION_TO_PHRASE_GROUNDING>',
        pieces(['it', -0.01], ...locPieces([1, 2, 3, 4], -0.01), ['dog', -2], ...locPieces([5, 6, 7, 8], -1)),
        CAR,
      ) as ScoredBoxesResult;
      assert.deepEqual(r.labels, ['dog']);
      assertClose(r.scores, [Math.exp(-6 / 5)], 1e-12);
    });

    it('scores stay in (0, 1]; NaN log-probabilities are rejected', () => {
      const low = postProcessWithScores('<REGION_PROPOSAL>', pieces(...locPieces([1, 2, 3, 4], -Infinity)), CAR) as ScoredBoxesResult;
      assert.ok(low.scores[0] > 0 && low.scores[0] <= 1);
      const high = postProcessWithScores('<REGION_PROPOSAL>', pieces(...locPieces([1, 2, 3, 4], 0.5)), CAR) as ScoredBoxesResult;
      assert.deepEqual(high.scores, [1]);
      assert.throws(() => postProcessWithScores('<OD>', pieces(['x', Number.NaN]), CAR), RangeError);
    });

    it('pure text has no scores', () => {
      assert.equal(postProcessWithScores('<CAPTION>', pieces(['</s>', -1], ['<s>', -1], ['A', -1], [' cat', -1]), CAR), 'A cat');
    });

    for (const [name, task, text, size] of WORKED) {
      for (const chunk of [1, 3, 7]) {
        it(`parsed value equals postProcess for example ${name} (chunks of ${chunk})`, () => {
          const ps = toPieces(text, chunk);
          assert.equal(ps.map((p) => p.text).join(''), text);
          const scored = postProcessWithScores(task, ps, size);
          assert.deepEqual(withoutScores(scored), postProcess(task, text, size));
          const scores = allScores(scored);
          const expectedCount = countInstances(postProcess(task, text, size));
          assert.equal(scores.length, expectedCount);
          for (const s of scores) assert.ok(s > 0 && s <= 1, `score ${s} out of (0, 1]`);
        });
      }
    }

    it('worked example 2 split into pieces: scores from the known per-piece logprobs', () => {
      const ps = toPieces(OD_TEXT, 3);
      const r = postProcessWithScores('<OD>', ps, CAR) as ScoredBoxesResult;
      // Recompute by hand from the pieces: label pieces are the text chunks right before each box.
      const lp = (t: string, nth = 0): number => ps.filter((p) => p.text === t)[nth].logprob;
      const mean = (xs: number[]): number => Math.exp(xs.reduce((a, b) => a + b, 0) / xs.length);
      const car = [lp('car'), lp('<loc_53>'), lp('<loc_333>'), lp('<loc_933>'), lp('<loc_774>')];
      const door = [lp('doo'), lp('r'), lp('<loc_712>'), lp('<loc_203>'), lp('<loc_906>'), lp('<loc_545>')];
      const wheel = [lp('whe'), lp('el')];
      assertClose(
        r.scores,
        [
          mean(car),
          mean(door),
          mean([...wheel, lp('<loc_704>'), lp('<loc_576>'), lp('<loc_866>'), lp('<loc_772>')]),
          mean([...wheel, lp('<loc_149>'), lp('<loc_584>'), lp('<loc_310>'), lp('<loc_773>')]),
        ],
        1e-12,
      );
    });
  });
});

/** One `[text, logprob]` pair per loc token, all with the same logprob (for {@link pieces}). */
function locPieces(bins: number[], logprob: number): Array<[string, number]> {
  return bins.map((b): [string, number] => [`<loc_${b}>`, logprob]);
}

/** Number of scored instances a parsed result should have. */
function countInstances(r: PostProcessResult): number {
  if (typeof r === 'string') return 0;
  if ('quad_boxes' in r) return r.quad_boxes.length;
  if ('bboxes_labels' in r) return r.bboxes.length + r.polygons.length;
  if ('polygons' in r) return r.polygons.length;
  return r.bboxes.length;
}
