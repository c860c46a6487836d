/**
 * The Florence-2 tokenizer (contract §3): BART/RoBERTa byte-level BPE plus the 1024 Florence added
 * tokens (`<loc_0>`..`<loc_999>` and friends), on top of the pure-JS `@huggingface/tokenizers`.
 *
 * Three folder layouts load to the same tokenizer:
 * 1. `tokenizer.json` with the Florence tokens baked in (onnx-community, processor-saved);
 * 2. the original Microsoft `tokenizer.json` (plain BART, 5 added tokens): the Florence tokens are
 *    appended in the reference order, as the reference processor does at runtime;
 * 3. no `tokenizer.json`: one is assembled in memory from `vocab.json` + `merges.txt`
 *    (+ `added_tokens.json`, + `tokenizer_config.json`), the way HF converts a slow BART tokenizer.
 *
 * A `tokenizer_config.json` next to them is read for `clean_up_tokenization_spaces` (default true)
 * and `model_max_length`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

/**
 * The part of `@huggingface/tokenizers`' Tokenizer this module uses, typed here: the package's
 * declaration files use extensionless relative imports that do not resolve under `nodenext`, so its
 * own types arrive unresolved.
 */
export interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

/** Builds the library's tokenizer from tokenizer.json and tokenizer_config.json contents. */
export function createHfTokenizer(json: object, config: object): HfTokenizer {
  const Ctor = Tokenizer as unknown as new (json: object, config: object) => HfTokenizer;
  return new Ctor(json, config);
}

/** Id of `<s>` (BOS/CLS) in the Florence-2 vocabulary. */
export const BOS_ID = 0;
/** Id of `<pad>`. */
export const PAD_ID = 1;
/** Id of `</s>` (EOS/SEP; also the decoder start token). */
export const EOS_ID = 2;
/** Number of location tokens `<loc_0>`..`<loc_999>`. */
export const NUM_LOC_TOKENS = 1000;

/**
 * The Florence-2 added tokens in the order the reference processor adds them (RC L85-92), which fixes
 * their ids: 50265 onwards on the BART vocabulary, so `<loc_N>` = 50269 + N.
 */
export const FLORENCE_ADDED_TOKENS: readonly string[] = Object.freeze([
  '<od>',
  '</od>',
  '<ocr>',
  '</ocr>',
  ...Array.from({ length: NUM_LOC_TOKENS }, (_, n) => `<loc_${n}>`),
  '<cap>',
  '</cap>',
  '<ncap>',
  '</ncap>',
  '<dcap>',
  '</dcap>',
  '<grounding>',
  '</grounding>',
  '<seg>',
  '</seg>',
  '<sep>',
  '<region_cap>',
  '</region_cap>',
  '<region_to_desciption>', // sic: the reference spells it this way
  '</region_to_desciption>',
  '<proposal>',
  '</proposal>',
  '<poly>',
  '</poly>',
  '<and>',
]);

/** One entry of `tokenizer.json` `added_tokens`. */
interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The parts of `tokenizer.json` this module reads or writes; the rest passes through untouched. */
interface TokenizerJson {
  truncation?: unknown;
  padding?: unknown;
  added_tokens?: AddedTokenJson[];
  normalizer?: unknown;
  pre_tokenizer?: { type?: string; [k: string]: unknown } | null;
  post_processor?: unknown;
  decoder?: { type?: string; [k: string]: unknown } | null;
  model: { type?: string; vocab: Record<string, number>; merges: string[] | [string, string][]; [k: string]: unknown };
  [k: string]: unknown;
}

/** The parts of `tokenizer_config.json` this module reads. */
interface TokenizerConfigJson {
  clean_up_tokenization_spaces?: boolean;
  model_max_length?: number;
  add_prefix_space?: boolean;
  added_tokens_decoder?: Record<string, Partial<Omit<AddedTokenJson, 'id'>> & { content: string }>;
  [k: string]: unknown;
}

/** A right-padded batch of prompts, ready to become int64 ORT tensors. */
export interface EncodedBatch {
  /** Token ids, row-major `[batch, maxLen]`, padded with `<pad>` (1). */
  ids: BigInt64Array;
  /** 1 for real tokens, 0 for padding. */
  attentionMask: BigInt64Array;
  /** `[batch, maxLen]`. */
  dims: [number, number];
}

// GPT-2 byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes are
// shifted to U+0100 onwards, in byte order. Only the reverse map (char → byte) is needed here.
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCharCode(printable ? b : 256 + shifted++), b);
  }
  return map;
})();

// HF `clean_up_tokenization`, applied in this order; each replacement is the pattern minus its spaces.
const CLEANUP_PATTERNS = [' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're"] as const;

function readText(dir: string, file: string): string {
  const path = join(dir, file);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read ${file} in tokenizer folder ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

function readJson<T>(dir: string, file: string): T {
  const text = readText(dir, file);
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${file} in tokenizer folder ${dir} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Parses `merges.txt`: an optional `#version` line, then one `left right` pair per line. */
function parseMerges(dir: string, text: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`merges.txt in tokenizer folder ${dir}: line ${i + 1} is not a "left right" pair: ${JSON.stringify(line)}`);
    }
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}

function specialToken(id: number, content: string, lstrip = false, normalized = false): AddedTokenJson {
  return { id, content, single_word: false, lstrip, rstrip: false, normalized, special: true };
}

/**
 * Assembles the `tokenizer.json` object HF's slow→fast conversion of a BART tokenizer would produce,
 * from `vocab.json`, `merges.txt` and, when present, `added_tokens.json` and `tokenizer_config.json`.
 */
function buildTokenizerJson(dir: string, config: TokenizerConfigJson): TokenizerJson {
  const vocab = readJson<Record<string, number>>(dir, 'vocab.json');
  const merges = parseMerges(dir, readText(dir, 'merges.txt'));
  const byId = new Map<number, AddedTokenJson>();
  const add = (t: AddedTokenJson, file: string): void => {
    const prev = byId.get(t.id);
    if (prev !== undefined && prev.content !== t.content) {
      throw new Error(`${file} in tokenizer folder ${dir} gives id ${t.id} to ${t.content}, already taken by ${prev.content}`);
    }
    if (prev === undefined) byId.set(t.id, t);
  };

  if (config.added_tokens_decoder !== undefined) {
    // The saved flags win: they are exactly what HF would put into tokenizer.json.
    for (const [id, t] of Object.entries(config.added_tokens_decoder)) {
      add(
        {
          id: Number(id),
          content: t.content,
          single_word: t.single_word ?? false,
          lstrip: t.lstrip ?? false,
          rstrip: t.rstrip ?? false,
          normalized: t.normalized ?? false,
          special: t.special ?? true,
        },
        'tokenizer_config.json',
      );
    }
  } else {
    // BART's special tokens as the slow tokenizer declares them (`<mask>` strips the space before it).
    for (const content of ['<s>', '<pad>', '</s>', '<unk>', '<mask>']) {
      const id = vocab[content];
      if (id !== undefined) add(specialToken(id, content, content === '<mask>', true), 'vocab.json');
    }
  }
  if (existsSync(join(dir, 'added_tokens.json'))) {
    const extra = readJson<Record<string, number>>(dir, 'added_tokens.json');
    for (const [content, id] of Object.entries(extra)) add(specialToken(id, content), 'added_tokens.json');
  }

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...byId.values()].sort((a, b) => a.id - b.id),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: config.add_prefix_space ?? false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', vocab['</s>'] ?? EOS_ID],
      cls: ['<s>', vocab['<s>'] ?? BOS_ID],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** Largest id used by the BPE vocabulary or the added tokens. */
function maxId(json: TokenizerJson): number {
  let max = -1;
  for (const id of Object.values(json.model.vocab)) if (id > max) max = id;
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  return max;
}

/**
 * Returns a copy of `json` fit for inference: leftover `truncation`/`padding` blocks removed (they
 * would cut prompts at 800 tokens), and the Florence tokens appended when `<loc_0>` is missing (the
 * Microsoft layout), with ids continuing after the largest existing id.
 */
function prepareTokenizerJson(json: TokenizerJson, source: string): TokenizerJson {
  if (
    typeof json !== 'object' ||
    json === null ||
    typeof json.model !== 'object' ||
    json.model === null ||
    typeof json.model.vocab !== 'object'
  ) {
    throw new Error(`${source} has no BPE model vocabulary (model.vocab)`);
  }
  // Decoding to per-token pieces re-implements the byte-level decoder, so insist on that layout.
  if (json.decoder?.type !== 'ByteLevel' || json.pre_tokenizer?.type !== 'ByteLevel') {
    throw new Error(`${source} is not a byte-level BPE tokenizer (pre_tokenizer and decoder must be ByteLevel)`);
  }
  const added = [...(json.added_tokens ?? [])];
  const known = new Set([...added.map((t) => t.content), ...Object.keys(json.model.vocab)]);
  if (!known.has('<loc_0>')) {
    let next = maxId(json) + 1;
    for (const content of FLORENCE_ADDED_TOKENS) {
      if (!known.has(content)) added.push(specialToken(next++, content));
    }
  }
  return { ...json, truncation: null, padding: null, added_tokens: added };
}

/**
 * The Florence-2 tokenizer: prompt encoding, batch padding, decoding of generated ids, and per-token
 * decoded pieces for mapping token scores onto the decoded text.
 */
export class FlorenceTokenizer {
  /** Id of `<s>`. */
  readonly bosId: number;
  /** Id of `<pad>`, used for right padding in {@link encodeBatch}. */
  readonly padId: number;
  /** Id of `</s>`. */
  readonly eosId: number;
  /** Number of token ids (largest id + 1): 51289 for Florence-2. */
  readonly vocabSize: number;
  /** Whether {@link decode} applies HF `clean_up_tokenization_spaces` (tokenizer_config.json; default true). */
  readonly cleanUpTokenizationSpaces: boolean;
  /** `model_max_length` from tokenizer_config.json, if given (1024 for Florence-2). Not enforced here. */
  readonly modelMaxLength: number | undefined;

  private readonly tok: HfTokenizer;
  /** Token strings the byte-level decoder emits verbatim (every added token). */
  private readonly addedContents: ReadonlySet<string>;
  private readonly locIds: Int32Array;

  private constructor(json: TokenizerJson, config: TokenizerConfigJson, source: string) {
    const { added_tokens_decoder: _unused, ...libConfig } = config;
    try {
      this.tok = createHfTokenizer(json, libConfig);
    } catch (err) {
      throw new Error(`Cannot build a tokenizer from ${source}: ${(err as Error).message}`, { cause: err });
    }
    this.addedContents = new Set((json.added_tokens ?? []).map((t) => t.content));
    this.vocabSize = maxId(json) + 1;
    this.cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces ?? true;
    this.modelMaxLength = typeof config.model_max_length === 'number' ? config.model_max_length : undefined;

    const need = (content: string): number => {
      const id = this.tok.token_to_id(content);
      if (id === undefined) throw new Error(`${source} has no ${content} token`);
      return id;
    };
    this.bosId = need('<s>');
    this.padId = need('<pad>');
    this.eosId = need('</s>');
    this.locIds = Int32Array.from({ length: NUM_LOC_TOKENS }, (_, n) => need(`<loc_${n}>`));

    // tokenPieces maps every character of a non-added token back to a byte; check that once here.
    for (const token of Object.keys(json.model.vocab)) {
      if (this.addedContents.has(token)) continue;
      for (const ch of token) {
        if (!BYTE_OF_CHAR.has(ch)) throw new Error(`${source}: vocabulary token ${JSON.stringify(token)} is not byte-level`);
      }
    }
  }

  /**
   * Loads the tokenizer of a model folder: `tokenizer.json` (+ `tokenizer_config.json`), or, without
   * a `tokenizer.json`, `vocab.json` + `merges.txt` (+ `added_tokens.json`, + `tokenizer_config.json`).
   * Synchronous: it runs once at start-up.
   *
   * @throws Error naming the folder and the missing or broken file.
   */
  static fromDir(dir: string): FlorenceTokenizer {
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw new Error(`Tokenizer folder ${dir} does not exist or is not a folder`);

    const config = existsSync(join(dir, 'tokenizer_config.json')) ? readJson<TokenizerConfigJson>(dir, 'tokenizer_config.json') : {};
    if (existsSync(join(dir, 'tokenizer.json'))) {
      const json = readJson<TokenizerJson>(dir, 'tokenizer.json');
      return new FlorenceTokenizer(prepareTokenizerJson(json, `tokenizer.json in ${dir}`), config, `tokenizer.json in ${dir}`);
    }
    const missing = ['vocab.json', 'merges.txt'].filter((f) => !existsSync(join(dir, f)));
    if (missing.length > 0) {
      throw new Error(
        `Tokenizer folder ${dir} has no tokenizer.json and no ${missing.join(' or ')} to build one from ` +
          '(it needs tokenizer.json, or vocab.json + merges.txt)',
      );
    }
    const source = `vocab.json + merges.txt in ${dir}`;
    return new FlorenceTokenizer(prepareTokenizerJson(buildTokenizerJson(dir, config), source), config, source);
  }

  /**
   * Builds the tokenizer from already-parsed `tokenizer.json` (and `tokenizer_config.json`) objects,
   * with the same treatment as {@link fromDir} (truncation/padding dropped, Florence tokens added if
   * missing). The inputs are not modified.
   */
  static fromJson(tokenizerJson: object, tokenizerConfig: object = {}, source = 'tokenizer.json'): FlorenceTokenizer {
    return new FlorenceTokenizer(
      prepareTokenizerJson(tokenizerJson as TokenizerJson, source),
      tokenizerConfig as TokenizerConfigJson,
      source,
    );
  }

  /** Encodes one prompt with special tokens: `[<s>, ...BPE..., </s>]`, no truncation. */
  encode(prompt: string): number[] {
    if (typeof prompt !== 'string') throw new TypeError(`prompt must be a string, got ${typeof prompt}`);
    return this.tok.encode(prompt, { add_special_tokens: true }).ids;
  }

  /** Encodes prompts and right-pads them to the longest with `<pad>`, mask 0 on the padding. */
  encodeBatch(prompts: readonly string[]): EncodedBatch {
    const rows = prompts.map((p) => this.encode(p));
    const maxLen = rows.reduce((m, r) => Math.max(m, r.length), 0);
    const ids = new BigInt64Array(rows.length * maxLen).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(rows.length * maxLen);
    rows.forEach((row, b) => {
      for (let j = 0; j < row.length; j++) {
        ids[b * maxLen + j] = BigInt(row[j]);
        attentionMask[b * maxLen + j] = 1n;
      }
    });
    return { ids, attentionMask, dims: [rows.length, maxLen] };
  }

  /**
   * Decodes generated ids the way the reference post-processing does (`batch_decode` with
   * `skip_special_tokens=False`): special and added tokens verbatim, byte-level decoding (invalid
   * UTF-8 becomes U+FFFD), then `clean_up_tokenization_spaces` per tokenizer_config.json.
   * An empty input gives `''`.
   *
   * @throws RangeError on an id that is not an integer in [0, vocabSize).
   */
  decode(ids: ArrayLike<number>): string {
    const list = this.checkIds(ids);
    if (list.length === 0) return '';
    return this.tok.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces });
  }

  /**
   * The decoded text of each id, in order, such that `tokenPieces(ids).join('') === decode(ids)`.
   *
   * A character whose UTF-8 bytes span several byte-level tokens belongs to the token that completes
   * it; the earlier ones get `''` (an incomplete sequence at the end of a run gives U+FFFD to the run's
   * last token). Spaces removed by the clean-up are removed from the piece that held them.
   *
   * @throws RangeError on an id that is not an integer in [0, vocabSize).
   */
  tokenPieces(ids: ArrayLike<number>): string[] {
    const list = this.checkIds(ids);
    const pieces = new Array<string>(list.length).fill('');
    // A streaming decoder per run of byte-level tokens between added tokens: the same split and the
    // same U+FFFD handling as the library's ByteLevel decoder, which decodes each run in one go.
    let decoder: TextDecoder | undefined;
    let lastInRun = -1;
    const endRun = (): void => {
      if (decoder !== undefined) pieces[lastInRun] += decoder.decode();
      decoder = undefined;
    };
    for (let i = 0; i < list.length; i++) {
      const token = this.tok.id_to_token(list[i])!;
      if (this.addedContents.has(token)) {
        endRun();
        pieces[i] = token;
      } else {
        decoder ??= new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
        pieces[i] = decoder.decode(tokenBytes(token), { stream: true });
        lastInRun = i;
      }
    }
    endRun();
    return this.cleanUpTokenizationSpaces ? cleanUpPieces(pieces) : pieces;
  }

  /** Id of `<loc_n>`, n in [0, 999]. */
  locTokenId(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n >= NUM_LOC_TOKENS) throw new RangeError(`location bin must be an integer in [0, 999], got ${n}`);
    return this.locIds[n];
  }

  /** Id of a token string (added tokens included), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** Token string of an id (byte-level form for BPE tokens), or undefined. */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  private checkIds(ids: ArrayLike<number>): number[] {
    const list = Array.from(ids);
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tok.id_to_token(id) === undefined) {
        throw new RangeError(`token id ${String(id)} at position ${i} is not in the vocabulary [0, ${this.vocabSize})`);
      }
    }
    return list;
  }
}

/** The bytes a byte-level BPE token stands for (its characters were checked at load). */
function tokenBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  let n = 0;
  for (const ch of token) out[n++] = BYTE_OF_CHAR.get(ch)!;
  return out.subarray(0, n);
}

/**
 * Applies HF `clean_up_tokenization` to the concatenation of `pieces` while remembering which piece
 * each surviving character came from, so the pieces still join to the cleaned text. The clean-up only
 * deletes spaces, in the same pass order and left-to-right non-overlapping matching as `str.replace`.
 */
function cleanUpPieces(pieces: readonly string[]): string[] {
  let text = pieces.join('');
  let owner: number[] = [];
  pieces.forEach((p, i) => {
    for (let k = 0; k < p.length; k++) owner.push(i);
  });
  for (const pattern of CLEANUP_PATTERNS) {
    let at = text.indexOf(pattern);
    if (at === -1) continue;
    let out = '';
    const outOwner: number[] = [];
    let pos = 0;
    const copy = (from: number, to: number): void => {
      out += text.slice(from, to);
      for (let k = from; k < to; k++) outOwner.push(owner[k]);
    };
    while (at !== -1) {
      copy(pos, at);
      for (let k = 0; k < pattern.length; k++) {
        if (pattern[k] !== ' ') copy(at + k, at + k + 1);
      }
      pos = at + pattern.length;
      at = text.indexOf(pattern, pos);
    }
    copy(pos, text.length);
    text = out;
    owner = outOwner;
  }
  // Deletions keep order, so each piece is one contiguous slice of the cleaned text.
  const result = new Array<string>(pieces.length).fill('');
  let start = 0;
  for (let k = 1; k <= text.length; k++) {
    if (k === text.length || owner[k] !== owner[start]) {
      result[owner[start]] = text.slice(start, k);
      start = k;
    }
  }
  return result;
}
