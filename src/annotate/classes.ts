/**
 * Class names and ids for auto-annotation: the ordered class list of a dataset, and the matching of
 * the phrases Florence-2 returns ("Cars", "a person", "red car") to those classes.
 *
 * Ids are positions in the list. With user-given classes the list is exactly that order; otherwise
 * (open-set `<OD>`) new names are appended as they are first seen, in the annotator's fixed commit
 * order, and the list is persisted with the dataset, so ids never change between runs or resumes.
 */

// Plurals that suffix rules get wrong. Keys are plural, values singular.
const IRREGULAR_PLURALS: Readonly<Record<string, string>> = {
  people: 'person',
  persons: 'person',
  men: 'man',
  women: 'woman',
  children: 'child',
  mice: 'mouse',
  geese: 'goose',
  teeth: 'tooth',
  feet: 'foot',
  oxen: 'ox',
  dice: 'die',
  knives: 'knife',
  wives: 'wife',
  leaves: 'leaf',
  lives: 'life',
};

// Words whose trailing "s" is not a plural ending (a bus is not a "bu").
const NOT_PLURAL = /(ss|us|is|ous|ics)$/;

/**
 * Lower-cases, trims and collapses whitespace; drops surrounding punctuation and a leading article,
 * which grounding phrases often carry ("a person", "the dog.").
 */
export function normalizePhrase(text: string): string {
  let s = text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[_\s]+/g, ' ')
    .trim();
  s = s.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
  s = s.replace(/^(a|an|the|some)\s+/, '');
  return s;
}

/**
 * Possible singular forms of one lower-case word, the word itself first. Several candidates because
 * English suffixes are ambiguous ("buses" → "bus", "horses" → "horse"); two words match when their
 * candidate sets meet, so both "horse" and "bus" find their plurals.
 */
export function singularCandidates(word: string): string[] {
  const out = new Set<string>([word]);
  const irregular = IRREGULAR_PLURALS[word];
  if (irregular !== undefined) out.add(irregular);
  if (word.length > 3 && word.endsWith('ies')) out.add(`${word.slice(0, -3)}y`);
  if (word.length > 3 && word.endsWith('ves')) {
    out.add(`${word.slice(0, -3)}f`);
    out.add(`${word.slice(0, -3)}fe`);
  }
  if (word.length > 2 && word.endsWith('es')) out.add(word.slice(0, -2));
  if (word.length > 1 && word.endsWith('s') && !NOT_PLURAL.test(word)) out.add(word.slice(0, -1));
  return [...out];
}

function wordsMatch(a: string, b: string): boolean {
  if (a === b) return true;
  const cb = singularCandidates(b);
  return singularCandidates(a).some((x) => cb.includes(x));
}

/** Whether two word lists are equal up to plurals. */
function sequenceMatches(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => wordsMatch(w, b[i]));
}

/** Where `needle` last occurs as consecutive whole words in `hay`, up to plurals; -1 if nowhere. */
function lastIndexOfWords(hay: readonly string[], needle: readonly string[]): number {
  for (let i = hay.length - needle.length; i >= 0; i--) {
    if (sequenceMatches(hay.slice(i, i + needle.length), needle)) return i;
  }
  return -1;
}

// A noun phrase's head comes before these ("cup of coffee", "person on a bike").
const PREPOSITIONS = new Set([
  'of',
  'on',
  'in',
  'with',
  'at',
  'near',
  'by',
  'under',
  'behind',
  'beside',
  'next',
  'inside',
  'over',
  'above',
  'below',
  'from',
  'for',
  'and',
]);

const words = (s: string): string[] => (s === '' ? [] : s.split(' '));

/**
 * An ordered list of class names with phrase matching. Construct with the user's classes (fixed), or
 * empty / from a persisted list (open: {@link ClassMap.resolve} may append).
 */
export class ClassMap {
  private readonly list: string[];
  private readonly normalized: string[][];

  /**
   * @param names initial classes in id order; duplicates (after normalisation) are an error because
   *   two ids for one class would split its boxes between them.
   * @param fixed true when the names are the user's `classes`: phrases that match none are dropped.
   */
  constructor(
    names: readonly string[] = [],
    readonly fixed = false,
  ) {
    this.list = [];
    this.normalized = [];
    for (const name of names) {
      const n = normalizePhrase(name);
      if (n === '') throw new RangeError(`class names must not be empty (got ${JSON.stringify(name)})`);
      const clash = this.list.findIndex((_, i) => sequenceMatches(this.normalized[i], words(n)));
      if (clash >= 0) throw new RangeError(`classes ${JSON.stringify(this.list[clash])} and ${JSON.stringify(name)} are the same class`);
      this.list.push(name.trim());
      this.normalized.push(words(n));
    }
  }

  /** Class names in id order. */
  get names(): readonly string[] {
    return this.list;
  }

  get size(): number {
    return this.list.length;
  }

  /**
   * The class a phrase refers to, without changing the map: first an exact match up to case,
   * articles and plurals ("Cars" → "car", "people" → "person"); then, for a fixed map only, a class
   * whose words occur in the phrase, looking first at the words before a preposition ("person on a
   * bike" → person), preferring the longest ("traffic light" beats "light") and then the last, as
   * English puts the head noun last ("red car" → car, "car door" → door). Returns the id, or -1.
   */
  match(phrase: string): number {
    const p = words(normalizePhrase(phrase));
    if (p.length === 0) return -1;
    const exact = this.normalized.findIndex((c) => sequenceMatches(p, c));
    if (exact >= 0 || !this.fixed) return exact;
    const cut = p.findIndex((w) => PREPOSITIONS.has(w));
    const head = cut > 0 ? this.partial(p.slice(0, cut)) : -1;
    return head >= 0 ? head : this.partial(p);
  }

  private partial(p: readonly string[]): number {
    let best = -1;
    let bestAt = -1;
    for (let i = 0; i < this.normalized.length; i++) {
      const c = this.normalized[i];
      const at = lastIndexOfWords(p, c);
      if (at < 0) continue;
      const longer = best < 0 || c.length > this.normalized[best].length;
      const sameLater = best >= 0 && c.length === this.normalized[best].length && at > bestAt;
      if (longer || sameLater) {
        best = i;
        bestAt = at;
      }
    }
    return best;
  }

  /**
   * The id of a phrase; on an open map an unmatched phrase becomes a new class (named by its
   * normalised form) at the end. Returns -1 only for a fixed map or an empty phrase.
   */
  resolve(phrase: string): number {
    const id = this.match(phrase);
    if (id >= 0 || this.fixed) return id;
    const n = normalizePhrase(phrase);
    if (n === '') return -1;
    this.list.push(n);
    this.normalized.push(words(n));
    return this.list.length - 1;
  }
}
