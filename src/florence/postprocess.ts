/**
 * Generated text → typed task result (contract §7), plus optional per-instance confidence scores.
 *
 * Parsing follows the reference remote code (RC, contract §7.2): the same phrase, label, box, OCR and
 * polygon regexes, the phrase-grounding blacklist, the ASCII filter on bbox / grounding / polygon
 * labels, `allow_empty_phrase` for REGION_PROPOSAL and the segmentation tasks, runs of loc tokens,
 * `<poly>` instance grouping, `<sep>` polygon splitting and dropping an odd last polygon coordinate.
 * Documented departures (contract §10.6 suggestion):
 * - `<s>`, `</s>` and `<pad>` are removed for every type. RC keeps `</s>` in the first OCR label and
 *   `<pad>` in pure text; both are decoding debris, never content.
 * - `<obj>` and `<ground>` are removed as HFN does. HFN removes them inside each phrase; since the
 *   RC phrase regex cannot contain a `<` in its text part, that would never fire, so we remove them
 *   from the whole text before matching, which keeps a stray marker from splitting a phrase.
 * - Labels are trimmed, also after the ASCII filter (RC would keep `' car'` from `'é car'`) and for
 *   OCR (as transformers.js and HFN do).
 * - A phrase that starts inside the loc token ending an incomplete box group gets its `loc_N>` head
 *   removed from the label for every type; RC does this only for polygons (RC, HFN and TJS all give
 *   `loc_3>dog` for OD text `cat<loc_1><loc_2><loc_3>dog<loc_…>×4`).
 * - Coordinates are float64 bin centres (transformers.js), not float32 (RC) or truncated ints (HFN).
 * - Python's `.` does not match `\n` (only); JS's `.` also skips `\r`, U+2028 and U+2029, so the
 *   regexes spell it `[^\n]` to keep Python's semantics.
 */
import { TASKS, type PostProcessType, type TaskToken } from 'florence2-client/catalogue';
import { type ImageSize, dequantizeBin } from './geometry';

export type { ImageSize } from './geometry';

/** Result of a `pure_text` task (captions, OCR, REGION_TO_*): the text, `<loc_N>` tokens kept verbatim. */
export type TextResult = string;

/** Result of OD, DENSE_REGION_CAPTION, REGION_PROPOSAL and CAPTION_TO_PHRASE_GROUNDING. */
export interface BoxesResult {
  /** `[x1, y1, x2, y2]` in pixels, one per instance, in text order. */
  bboxes: number[][];
  /** One label per box (`''` for REGION_PROPOSAL). */
  labels: string[];
}

/** Result of OCR_WITH_REGION. */
export interface QuadBoxesResult {
  /** `[x1, y1, x2, y2, x3, y3, x4, y4]` in pixels, one per text line. */
  quad_boxes: number[][];
  /** The text of each line (not ASCII-filtered). */
  labels: string[];
}

/** Result of REFERRING_EXPRESSION_SEGMENTATION and REGION_TO_SEGMENTATION. */
export interface PolygonsResult {
  /** Instance → polygons → flat `[x1, y1, ..., xn, yn]` in pixels (3 levels). */
  polygons: number[][][];
  /** One label per instance (usually `''` for these tasks). */
  labels: string[];
}

/** Result of OPEN_VOCABULARY_DETECTION: either boxes or polygons are filled, never both. */
export interface OpenVocabularyResult {
  bboxes: number[][];
  bboxes_labels: string[];
  polygons: number[][][];
  polygons_labels: string[];
}

/** Any task result: the inner value of the contract §7.4 `{ "<TASK>": value }` object. */
export type PostProcessResult = TextResult | BoxesResult | QuadBoxesResult | PolygonsResult | OpenVocabularyResult;

/** The result type produced for each post-processing type, for narrowing via `TASKS[task].postProcess`. */
export interface PostProcessResultByType {
  pure_text: TextResult;
  ocr: QuadBoxesResult;
  description_with_bboxes: BoxesResult;
  bboxes: BoxesResult;
  phrase_grounding: BoxesResult;
  polygons: PolygonsResult;
  description_with_bboxes_or_polygons: OpenVocabularyResult;
}

/** {@link BoxesResult} with one confidence per box. */
export interface ScoredBoxesResult extends BoxesResult {
  scores: number[];
}

/** {@link QuadBoxesResult} with one confidence per quad box. */
export interface ScoredQuadBoxesResult extends QuadBoxesResult {
  scores: number[];
}

/** {@link PolygonsResult} with one confidence per instance. */
export interface ScoredPolygonsResult extends PolygonsResult {
  scores: number[];
}

/** {@link OpenVocabularyResult} with one confidence per box and per polygon instance. */
export interface ScoredOpenVocabularyResult extends OpenVocabularyResult {
  bboxes_scores: number[];
  polygons_scores: number[];
}

/** What {@link postProcessWithScores} returns; pure text carries no score. */
export type ScoredPostProcessResult =
  TextResult | ScoredBoxesResult | ScoredQuadBoxesResult | ScoredPolygonsResult | ScoredOpenVocabularyResult;

/** The result shapes of the post-processing types (several types share one shape). */
export const RESULT_SHAPE = {
  pure_text: 'text',
  ocr: 'quad_boxes',
  description_with_bboxes: 'boxes',
  bboxes: 'boxes',
  phrase_grounding: 'boxes',
  polygons: 'polygons',
  description_with_bboxes_or_polygons: 'open_vocabulary',
} as const satisfies Record<PostProcessType, string>;
export type ResultShape = (typeof RESULT_SHAPE)[PostProcessType];

/** The scored result of each shape. */
export interface ScoredResultByShape {
  text: TextResult;
  boxes: ScoredBoxesResult;
  quad_boxes: ScoredQuadBoxesResult;
  polygons: ScoredPolygonsResult;
  open_vocabulary: ScoredOpenVocabularyResult;
}

/**
 * A task's scored result as its shape: the union carries no tag of its own, so the task's
 * post-processing type decides. Throws TypeError when the task does not produce that shape.
 */
export function scoredResultAs<S extends ResultShape>(task: TaskToken, result: ScoredPostProcessResult, shape: S): ScoredResultByShape[S] {
  const actual = RESULT_SHAPE[TASKS[task].postProcess];
  if (actual !== shape) throw new TypeError(`${task} produces a ${actual} result, not ${shape}`);
  return result as ScoredResultByShape[S];
}

/** One generated token: its decoded text and the log-probability the model gave it. */
export interface TokenPiece {
  /** Decoded text of the token; an added token such as `<loc_12>` is one piece. May be `''`. */
  text: string;
  /** Natural-log probability of the token (≤ 0). */
  logprob: number;
}

// ---------------------------------------------------------------------------------------------
// Quantization (contract §7.1)
// ---------------------------------------------------------------------------------------------

function checkExtent(v: number, name: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`${name} must be a finite number > 0, got ${String(v)}`);
  }
}

function checkSize(size: ImageSize): void {
  checkExtent(size.width, 'size.width');
  checkExtent(size.height, 'size.height');
}

/** Flat bins `[x, y, x, y, ...]` → pixels (even indices scale by width, odd by height). */
function dequantizeFlat(bins: readonly number[], size: ImageSize): number[] {
  return bins.map((b, i) => dequantizeBin(b, i % 2 === 0 ? size.width : size.height));
}

// ---------------------------------------------------------------------------------------------
// Text with offsets back into the original string
// ---------------------------------------------------------------------------------------------

/** Text after removals, with `origin[i]` = index in the original text of character `i`. */
interface TrackedText {
  text: string;
  origin: number[];
}

/** A half-open character range `[start, end)` in a {@link TrackedText}'s text. */
interface Span {
  start: number;
  end: number;
}

function track(text: string): TrackedText {
  return { text, origin: Array.from({ length: text.length }, (_, i) => i) };
}

/**
 * Removes `tokens` one after another, each everywhere (like chained Python `str.replace`), keeping
 * the offset map so regex matches on the cleaned text can be traced back to generated tokens.
 */
function removeTokens(src: TrackedText, tokens: readonly string[]): TrackedText {
  let cur = src;
  for (const token of tokens) {
    if (!cur.text.includes(token)) continue;
    let text = '';
    const origin: number[] = [];
    let from = 0;
    for (;;) {
      const hit = cur.text.indexOf(token, from);
      const end = hit < 0 ? cur.text.length : hit;
      text += cur.text.slice(from, end);
      for (let k = from; k < end; k++) origin.push(cur.origin[k]);
      if (hit < 0) break;
      from = hit + token.length;
    }
    cur = { text, origin };
  }
  return cur;
}

// Decoding debris (RC removes these for the bbox / grounding / polygon types; we do for all).
const SPECIAL_TOKENS = ['<s>', '</s>', '<pad>'] as const;
// HFN phrase markers, removed for the types that have phrases.
const PHRASE_MARKERS = ['<ground>', '<obj>'] as const;

// ---------------------------------------------------------------------------------------------
// Parsers (RC regexes; `.` written as `[^\n]`, see the file comment)
// ---------------------------------------------------------------------------------------------

// A phrase: text then ≥ 4 loc tokens (allow_empty_phrase = false), or only the loc run (= true).
const PHRASE_RE = /([^<]+(?:<loc_\d+>){4,})/g;
const LOC_RUN_RE = /(?:<loc_\d+>){4,}/g;
const LABEL_RE = /^\s*([^\n]*?)(?=<od>|<\/od>|<box>|<\/box>|<bbox>|<\/bbox>|<loc_)/;
const BOX_RE = /<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>/g;
const OCR_RE = /([^\n]+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>/g;
const POLY_PHRASE_RE = /([^<]+(?:<loc_\d+>|<sep>|<poly>|<\/poly>){4,})/g;
const POLY_RUN_RE = /(?:<loc_\d+>|<sep>|<poly>|<\/poly>){4,}/g;
const POLY_LABEL_RE = /^\s*([^\n]*?)(?=<od>|<\/od>|<box>|<\/box>|<bbox>|<\/bbox>|<loc_|<poly>)/;
const POLY_INSTANCE_RE = /<poly>([^\n]*?)<\/poly>/g;
const POLYGON_RE = /((?:<loc_\d+>)+)(?:<sep>|$)/g;
const LOC_RE = /<loc_(\d+)>/g;
const LOC_TAIL_RE = /^loc_\d+>/;

/** RC `_create_black_list_of_phrase_grounding` (duplicates removed). Compared with the trimmed label. */
const GROUNDING_BLACKLIST: ReadonlySet<string> = new Set([
  'it',
  'I',
  'me',
  'mine',
  'you',
  'your',
  'yours',
  'he',
  'him',
  'his',
  'she',
  'her',
  'hers',
  'they',
  'them',
  'their',
  'theirs',
  'one',
  'oneself',
  'we',
  'us',
  'our',
  'ours',
  'its',
  'myself',
  'yourself',
  'himself',
  'herself',
  'itself',
  'ourselves',
  'yourselves',
  'themselves',
  'this',
  'that',
  'these',
  'those',
  'who',
  'whom',
  'whose',
  'which',
  'what',
  'all',
  'another',
  'any',
  'anybody',
  'anyone',
  'anything',
  'each',
  'everybody',
  'everyone',
  'everything',
  'few',
  'many',
  'nobody',
  'none',
  'several',
  'some',
  'somebody',
  'someone',
  'something',
  'each other',
  'one another',
  'the image',
  'image',
  'images',
  'the',
  'a',
  'an',
  'a group',
  'other objects',
  'lots',
  'a set',
]);

/** One box, quad box or polygon instance in bins, with the text spans that produced it. */
interface ParsedInstance {
  label: string;
  /** Flat bins: 4 for a box, 8 for a quad box. Unused for polygon instances. */
  bins: number[];
  /** Polygons in bins (polygon instances only). */
  polygons: number[][];
  /** Label and loc-token spans in the cleaned text, for scoring. */
  spans: Span[];
}

interface Label {
  /** Trimmed label as matched (before the ASCII filter; the blacklist compares this). */
  raw: string;
  /** Span of `raw`, or none when it is empty. */
  spans: Span[];
}

/**
 * RC label search: `re.search(pattern, phrase).group().strip()`; `null` when RC would skip the phrase.
 * A `[^<]+` phrase can start inside a loc token that ends an incomplete box group (`cat<loc_1><loc_2>
 * <loc_3>dog<loc_10>…` yields the phrase `loc_3>dog<loc_10>…`); RC's polygon parser removes that
 * `loc_N>` head with `^loc_\d+>`, and we do so for the bbox parsers too, which RC forgot.
 */
function matchLabel(phrase: string, at: number, pattern: RegExp): Label | null {
  const head = LOC_TAIL_RE.exec(phrase)?.[0].length ?? 0;
  const m = pattern.exec(phrase.slice(head));
  if (m === null) return null;
  const whole = m[0];
  const raw = whole.trim();
  const start = at + head + whole.length - whole.trimStart().length;
  return { raw, spans: raw === '' ? [] : [{ start, end: start + raw.length }] };
}

/** Python `s.encode('ascii', 'ignore').decode()`, then trimmed (our fix). */
function asciiLabel(s: string): string {
  // eslint-disable-next-line no-control-regex -- the ASCII range is the point: non-ASCII is dropped, as the reference does
  return s.replace(/[^\x00-\x7f]/g, '').trim();
}

/** RC `parse_description_with_bboxes_from_text_and_spans` / `parse_phrase_grounding_from_text_and_spans`. */
function parseBoxes(text: string, kind: 'description' | 'region' | 'grounding'): ParsedInstance[] {
  const out: ParsedInstance[] = [];
  // RC also skips an empty phrase here; neither regex can match an empty string.
  for (const pm of text.matchAll(kind === 'region' ? LOC_RUN_RE : PHRASE_RE)) {
    const phrase = pm[0];
    const at = pm.index ?? 0;
    const label = matchLabel(phrase, at, LABEL_RE);
    if (label === null) continue;
    if (kind === 'grounding' && GROUNDING_BLACKLIST.has(label.raw)) continue;
    const name = asciiLabel(label.raw);
    // Every box in the phrase gets the phrase's label (extra loc tokens after a phrase join it).
    for (const bm of phrase.matchAll(BOX_RE)) {
      const start = at + (bm.index ?? 0);
      out.push({
        label: name,
        bins: [bm[1], bm[2], bm[3], bm[4]].map(Number),
        polygons: [],
        spans: [...label.spans, { start, end: start + bm[0].length }],
      });
    }
  }
  return out;
}

/** RC `parse_ocr_from_text_and_spans` (area threshold 0: nothing filtered). */
function parseOcr(text: string): ParsedInstance[] {
  const out: ParsedInstance[] = [];
  for (const m of text.matchAll(OCR_RE)) {
    const at = m.index ?? 0;
    const content = m[1];
    const label = content.trim();
    const labelStart = at + content.length - content.trimStart().length;
    const labelSpans = label === '' ? [] : [{ start: labelStart, end: labelStart + label.length }];
    out.push({
      label,
      bins: m.slice(2, 10).map(Number),
      polygons: [],
      spans: [...labelSpans, { start: at + content.length, end: at + m[0].length }],
    });
  }
  return out;
}

/** RC `parse_description_with_polygons_from_text_and_spans` (without `with_box_at_start`). */
function parsePolygons(text: string, allowEmptyPhrase: boolean): ParsedInstance[] {
  const out: ParsedInstance[] = [];
  for (const rm of text.matchAll(allowEmptyPhrase ? POLY_RUN_RE : POLY_PHRASE_RE)) {
    const run = rm[0];
    const at = rm.index ?? 0;
    const label = matchLabel(run, at, POLY_LABEL_RE);
    if (label === null) continue;
    const name = asciiLabel(label.raw);
    // Each <poly>…</poly> is one instance when both markers are present; otherwise the whole run is.
    const groups =
      run.includes('<poly>') && run.includes('</poly>')
        ? Array.from(run.matchAll(POLY_INSTANCE_RE), (g) => ({
            body: g[1],
            at: at + (g.index ?? 0) + '<poly>'.length,
          }))
        : [{ body: run, at }];
    for (const group of groups) {
      const polygons: number[][] = [];
      const spans = [...label.spans];
      for (const pm of group.body.matchAll(POLYGON_RE)) {
        const locs = Array.from(pm[1].matchAll(LOC_RE), (l) => Number(l[1]));
        if (locs.length % 2 === 1) locs.pop();
        polygons.push(locs);
        // The whole loc run counts for the score, including a dropped odd coordinate.
        const start = group.at + (pm.index ?? 0);
        spans.push({ start, end: start + pm[1].length });
      }
      if (polygons.length === 0) continue;
      out.push({ label: name, bins: [], polygons, spans });
    }
  }
  return out;
}

/** The parse of one generated text, before dequantization. */
type Parsed =
  | { kind: 'text'; text: string }
  | { kind: 'boxes'; boxes: ParsedInstance[] }
  | { kind: 'quad_boxes'; boxes: ParsedInstance[] }
  | { kind: 'polygons'; instances: ParsedInstance[] }
  | { kind: 'open_vocabulary'; boxes: ParsedInstance[]; instances: ParsedInstance[] };

/** Cleans and parses `source` per the task's post-processing type; also returns the offset map. */
function parse(task: TaskToken, source: TrackedText): { parsed: Parsed; clean: TrackedText } {
  // Contract §2: an unknown task falls back to pure_text (reachable only from untyped callers).
  const type: PostProcessType = TASKS[task]?.postProcess ?? 'pure_text';
  const clean = removeTokens(source, SPECIAL_TOKENS);
  if (type === 'pure_text') {
    // RC/TJS remove only <s> and </s>; we also drop <pad> and trim like HFN, because the text
    // follows the decoder-start `</s><s>` and may carry a leading space that is no content.
    return { parsed: { kind: 'text', text: clean.text.trim() }, clean };
  }
  if (type === 'ocr') return { parsed: { kind: 'quad_boxes', boxes: parseOcr(clean.text) }, clean };
  const phrases = removeTokens(clean, PHRASE_MARKERS);
  const t = phrases.text;
  const withOffsets = (parsed: Parsed): { parsed: Parsed; clean: TrackedText } => ({ parsed, clean: phrases });
  switch (type) {
    case 'description_with_bboxes':
      return withOffsets({ kind: 'boxes', boxes: parseBoxes(t, 'description') });
    case 'bboxes':
      return withOffsets({ kind: 'boxes', boxes: parseBoxes(t, 'region') });
    case 'phrase_grounding':
      return withOffsets({ kind: 'boxes', boxes: parseBoxes(t, 'grounding') });
    case 'polygons':
      return withOffsets({ kind: 'polygons', instances: parsePolygons(t, true) });
    case 'description_with_bboxes_or_polygons':
      // RC: polygons only if the text has <poly> anywhere, else boxes; never both.
      return withOffsets(
        t.includes('<poly>')
          ? { kind: 'open_vocabulary', boxes: [], instances: parsePolygons(t, false) }
          : { kind: 'open_vocabulary', boxes: parseBoxes(t, 'description'), instances: [] },
      );
  }
}

function toResult(parsed: Parsed, size: ImageSize): PostProcessResult {
  const boxes = (list: ParsedInstance[]): number[][] => list.map((b) => dequantizeFlat(b.bins, size));
  const polygons = (list: ParsedInstance[]): number[][][] => list.map((inst) => inst.polygons.map((p) => dequantizeFlat(p, size)));
  const labels = (list: ParsedInstance[]): string[] => list.map((i) => i.label);
  switch (parsed.kind) {
    case 'text':
      return parsed.text;
    case 'boxes':
      return { bboxes: boxes(parsed.boxes), labels: labels(parsed.boxes) };
    case 'quad_boxes':
      return { quad_boxes: boxes(parsed.boxes), labels: labels(parsed.boxes) };
    case 'polygons':
      return { polygons: polygons(parsed.instances), labels: labels(parsed.instances) };
    case 'open_vocabulary':
      return {
        bboxes: boxes(parsed.boxes),
        bboxes_labels: labels(parsed.boxes),
        polygons: polygons(parsed.instances),
        polygons_labels: labels(parsed.instances),
      };
  }
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/**
 * Parses the decoded generation of `task` (the whole sequence, starting `</s><s>`, contract §3) into
 * the task's result (the inner value of contract §7.4), with coordinates in pixels of an image of
 * `size`. See the file comment for how this differs from the references.
 * @throws RangeError when `size.width` or `size.height` is not a finite number > 0.
 */
export function postProcess(task: TaskToken, text: string, size: ImageSize): PostProcessResult {
  checkSize(size);
  return toResult(parse(task, track(text)).parsed, size);
}

/**
 * Like {@link postProcess} on `pieces.map(p => p.text).join('')`, plus a confidence per instance:
 * `scores` for boxes, quad boxes and polygon instances, `bboxes_scores` / `polygons_scores` for
 * OPEN_VOCABULARY_DETECTION. Pure-text tasks return just the string.
 *
 * Score of an instance = `exp(mean(logprob_t for t in T))`, the geometric mean of the probabilities
 * of T, the generated tokens whose text overlaps the instance's trimmed label or its location
 * tokens. Boxes that share one label each use the label's tokens plus their own 4 loc tokens; a
 * polygon instance uses its label plus all loc tokens of its polygons (an odd dropped coordinate
 * included); `<sep>`, `<poly>`, `</poly>` and removed tokens (`</s>`, `<s>`, `<pad>`) never count.
 * Scores are clamped into (0, 1] (a `-Infinity` log-probability gives `Number.MIN_VALUE`).
 *
 * The tokens are found by keeping each piece's character offsets in the joined text and mapping the
 * regex match ranges of the parse back to the pieces they overlap, so the parsing rules exist once.
 * @param pieces each generated token in order: its decoded text (`''` allowed, e.g. for a byte
 *   token that only completes a character together with the next one) and its log-probability.
 * @throws RangeError for a bad `size` or a NaN log-probability.
 */
export function postProcessWithScores(task: TaskToken, pieces: ReadonlyArray<TokenPiece>, size: ImageSize): ScoredPostProcessResult {
  checkSize(size);
  // 1) Join the pieces and remember which piece each character came from.
  const owner: number[] = [];
  pieces.forEach((p, i) => {
    if (Number.isNaN(p.logprob)) throw new RangeError(`pieces[${i}].logprob is NaN`);
    for (let k = 0; k < p.text.length; k++) owner.push(i);
  });
  const text = pieces.map((p) => p.text).join('');
  // 2) Parse once, exactly as postProcess does.
  const { parsed, clean } = parse(task, track(text));
  const result = toResult(parsed, size);
  // 3) Score each instance from the pieces its spans overlap.
  const score = (inst: ParsedInstance): number => {
    const tokens = new Set<number>();
    for (const span of inst.spans) {
      for (let k = span.start; k < span.end; k++) tokens.add(owner[clean.origin[k]]);
    }
    if (tokens.size === 0) return 1; // Unreachable: every instance has at least one loc token.
    let sum = 0;
    for (const t of tokens) sum += pieces[t].logprob;
    return Math.min(1, Math.max(Number.MIN_VALUE, Math.exp(sum / tokens.size)));
  };
  switch (parsed.kind) {
    case 'text':
      return result as TextResult;
    case 'boxes':
      return { ...(result as BoxesResult), scores: parsed.boxes.map(score) };
    case 'quad_boxes':
      return { ...(result as QuadBoxesResult), scores: parsed.boxes.map(score) };
    case 'polygons':
      return { ...(result as PolygonsResult), scores: parsed.instances.map(score) };
    case 'open_vocabulary':
      return {
        ...(result as OpenVocabularyResult),
        bboxes_scores: parsed.boxes.map(score),
        polygons_scores: parsed.instances.map(score),
      };
  }
}
