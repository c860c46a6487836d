import { Rng } from '../../tools/synth/rng';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { constructPrompt } from '../../src/florence/prompts';
import type { TaskToken } from 'florence2-client/catalogue';
import { BOS_ID, EOS_ID, FLORENCE_ADDED_TOKENS, FlorenceTokenizer, PAD_ID } from '../../src/florence/tokenizer';

const REPO_ROOT = resolve(__dirname, '..', '..');
const VENDOR_DIR = join(REPO_ROOT, 'vendor', 'florence2');
// Optional: the shared reference set sits beside the checkout; tests that need it skip without it.
const MICROSOFT_TOKENIZER = join(REPO_ROOT, '..', 'shared', 'florence2-reference', 'microsoft-Florence-2-base', 'tokenizer.json');

/** Contract §3 prompt id table: [how the prompt is made, input_ids]. */
const PROMPT_TABLE: Array<[{ task: TaskToken; input?: string } | { raw: string }, number[]]> = [
  [{ task: '<CAPTION>' }, [0, 2264, 473, 5, 2274, 6190, 116, 2]],
  [{ task: '<DETAILED_CAPTION>' }, [0, 47066, 21700, 11, 4617, 99, 16, 2343, 11, 5, 2274, 4, 2]],
  [{ task: '<MORE_DETAILED_CAPTION>' }, [0, 47066, 21700, 19, 10, 17818, 99, 16, 2343, 11, 5, 2274, 4, 2]],
  [{ task: '<OD>' }, [0, 574, 22486, 5, 8720, 19, 4120, 766, 11, 5, 2274, 4, 2]],
  [{ task: '<DENSE_REGION_CAPTION>' }, [0, 574, 22486, 5, 8720, 11, 5, 2274, 6, 19, 49, 24173, 4, 2]],
  [{ task: '<REGION_PROPOSAL>' }, [0, 574, 22486, 5, 976, 5327, 11, 5, 2274, 4, 2]],
  [{ task: '<OCR>' }, [0, 2264, 16, 5, 2788, 11, 5, 2274, 116, 2]],
  [{ task: '<OCR_WITH_REGION>' }, [0, 2264, 16, 5, 2788, 11, 5, 2274, 6, 19, 3806, 116, 2]],
  [{ task: '<OPEN_VOCABULARY_DETECTION>', input: 'cat' }, [0, 574, 22486, 4758, 11, 5, 2274, 4, 2]],
  [{ task: '<OPEN_VOCABULARY_DETECTION>', input: 'wheels' }, [0, 574, 22486, 10562, 11, 5, 2274, 4, 2]],
  [{ task: '<REFERRING_EXPRESSION_SEGMENTATION>', input: 'a car' }, [0, 574, 22486, 10, 512, 11, 5, 2274, 19, 11445, 2]],
  [
    { task: '<REGION_TO_DESCRIPTION>', input: '<loc_52><loc_332><loc_932><loc_774>' },
    [0, 2264, 473, 5, 976, 1437, 50321, 50601, 51201, 51043, 6190, 116, 2],
  ],
  [{ raw: 'describe' }, [0, 45091, 21700, 2]],
];

const promptOf = (row: (typeof PROMPT_TABLE)[number][0]): string => ('raw' in row ? row.raw : constructPrompt(row.task, row.input));

const UNICODE_TEXT = 'Ünïcode café 🚗 <loc_5>';
const EXTRA_TEXTS = [
  UNICODE_TEXT,
  "It isn't here . It's John 's car , isn' t it ? Yes ! ' quoted ' I 'm sure you 've seen we 're done",
  '中文字符 日本語 한국어 😀👍🏽 Ω≈ç√∫',
  '  leading and trailing spaces  \t\n',
  '<od>car<loc_0><loc_999></od><s></s><pad><unk> <mask>x<sep><and>',
  '<region_to_desciption>snake case_words 12345 3.14',
];

// The two decode examples of contract §3, and the HF end-to-end example (contract §8, item 15).
const DECODE_EXAMPLES: Array<[number[], string]> = [
  [
    [2, 0, 0, 0, 5901, 50322, 50602, 51202, 51043, 11219, 3679, 50694, 50772, 50743, 50784, 2],
    '</s><s><s><s>car<loc_53><loc_333><loc_933><loc_774>door handle<loc_425><loc_503><loc_474><loc_515></s>',
  ],
  [[2, 0, 102, 2272, 512, 9181, 11, 760, 9, 10, 5718, 745, 2], '</s><s>a green car parked in front of a yellow building</s>'],
  [
    [
      2, 0, 133, 2274, 924, 10, 912, 1203, 2828, 15, 5, 526, 9, 10, 2014, 11, 35910, 6, 188, 469, 412, 4, 20, 2014, 16, 9321, 19, 3413, 6,
      3980, 6, 8, 19638, 6, 8, 89, 32, 82, 3051, 15, 5, 2767, 22609, 4, 20, 6360, 16, 7097, 11, 5, 3618, 4, 2,
    ],
    '</s><s>The image shows a stop sign sitting on the side of a street in Chinatown, New York City. The street is lined with buildings, ' +
      'trees, and statues, and there are people walking on the footpath. The sky is visible in the background.</s>',
  ],
];

/** Seeded generator (the synth tool's) so fuzz cases are reproducible. */
function prng(seed: number): () => number {
  const rng = new Rng(seed, 'tokenizer-fuzz');
  return () => rng.next();
}

function tempDir(parent: string, name: string, files: Record<string, string>): string {
  const dir = join(parent, name);
  mkdirSync(dir);
  for (const [file, from] of Object.entries(files)) copyFileSync(from, join(dir, file));
  return dir;
}

describe('florence/tokenizer', function () {
  let tok: FlorenceTokenizer;
  let tmp: string;

  before(function () {
    tok = FlorenceTokenizer.fromDir(VENDOR_DIR);
    tmp = mkdtempSync(join(tmpdir(), 'florence-tok-'));
  });

  after(function () {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  describe('vocabulary', function () {
    it('has the Florence-2 size, special ids and location ids (contract §3)', function () {
      assert.equal(tok.vocabSize, 51289);
      assert.deepEqual([tok.bosId, tok.padId, tok.eosId], [BOS_ID, PAD_ID, EOS_ID]);
      assert.deepEqual([BOS_ID, PAD_ID, EOS_ID], [0, 1, 2]);
      assert.equal(tok.locTokenId(0), 50269);
      assert.equal(tok.locTokenId(999), 51268);
      for (let n = 0; n < 1000; n += 37) assert.equal(tok.locTokenId(n), 50269 + n);
      assert.throws(() => tok.locTokenId(1000), RangeError);
      assert.throws(() => tok.locTokenId(1.5), RangeError);
      assert.equal(tok.tokenToId('<od>'), 50265);
      assert.equal(tok.tokenToId('<region_to_desciption>'), 51282);
      assert.equal(tok.tokenToId('<and>'), 51288);
      assert.equal(tok.idToToken(1437), 'Ġ');
      assert.equal(tok.cleanUpTokenizationSpaces, true);
      assert.equal(tok.modelMaxLength, 1024);
    });

    it('FLORENCE_ADDED_TOKENS is the reference list: 1024 tokens, ids 50265.. in order', function () {
      assert.equal(FLORENCE_ADDED_TOKENS.length, 1024);
      FLORENCE_ADDED_TOKENS.forEach((t, i) => assert.equal(tok.tokenToId(t), 50265 + i, t));
    });
  });

  describe('encode: contract §3 prompt id table', function () {
    for (const [row, ids] of PROMPT_TABLE) {
      const label = 'raw' in row ? JSON.stringify(row.raw) : `${row.task}${row.input === undefined ? '' : ` + ${row.input}`}`;
      it(label, function () {
        assert.deepEqual(tok.encode(promptOf(row)), ids);
      });
    }

    it('does not truncate (the leftover tokenizer.json truncation block of 800 is dropped)', function () {
      const ids = tok.encode('a '.repeat(900).trim());
      assert.equal(ids.length, 902);
      assert.equal(ids[0], 0);
      assert.equal(ids.at(-1), 2);
    });
  });

  describe('encodeBatch', function () {
    it('right-pads with <pad>=1 and mask 0', function () {
      const prompts = [constructPrompt('<CAPTION>'), 'describe', constructPrompt('<DENSE_REGION_CAPTION>')];
      const batch = tok.encodeBatch(prompts);
      assert.deepEqual(batch.dims, [3, 14]);
      assert.equal(batch.ids.length, 42);
      assert.equal(batch.attentionMask.length, 42);
      const rows = prompts.map((p) => tok.encode(p));
      rows.forEach((row, b) => {
        const ids = Array.from(batch.ids.subarray(b * 14, (b + 1) * 14), Number);
        const mask = Array.from(batch.attentionMask.subarray(b * 14, (b + 1) * 14), Number);
        assert.deepEqual(ids, [...row, ...new Array(14 - row.length).fill(1)]);
        assert.deepEqual(mask, [...new Array(row.length).fill(1), ...new Array(14 - row.length).fill(0)]);
      });
    });

    it('handles a single prompt and an empty batch', function () {
      const one = tok.encodeBatch(['describe']);
      assert.deepEqual(one.dims, [1, 4]);
      assert.deepEqual(Array.from(one.ids), [0n, 45091n, 21700n, 2n]);
      assert.deepEqual(Array.from(one.attentionMask), [1n, 1n, 1n, 1n]);
      const none = tok.encodeBatch([]);
      assert.deepEqual(none.dims, [0, 0]);
      assert.equal(none.ids.length, 0);
    });
  });

  describe('decode', function () {
    DECODE_EXAMPLES.forEach(([ids, text], i) => {
      it(`decodes example ${i + 1} with special tokens and clean-up`, function () {
        assert.equal(tok.decode(ids), text);
        assert.equal(tok.decode(Int32Array.from(ids)), text);
      });
    });

    it('applies clean_up_tokenization_spaces (" ." and " \'s")', function () {
      const ids = tok.encode("a car . John 's car , isn't it ?");
      assert.equal(tok.decode(ids), "<s>a car. John's car, isn't it?</s>");
    });

    it('gives U+FFFD for an incomplete UTF-8 character and "" for no ids', function () {
      const car = tok.encode(' 🚗').slice(1, -1);
      assert.ok(car.length > 1, 'the emoji should span several byte-level tokens');
      assert.equal(tok.decode(car.slice(0, -1)), ' \uFFFD');
      assert.equal(tok.decode([]), '');
    });

    it('rejects ids outside the vocabulary', function () {
      assert.throws(() => tok.decode([0, 51289]), RangeError);
      assert.throws(() => tok.decode([-1]), RangeError);
      assert.throws(() => tok.decode([1.5]), RangeError);
      assert.throws(() => tok.tokenPieces([51289]), RangeError);
    });

    it('round-trips encoded text (except the space <mask> strips, lstrip as in BART)', function () {
      for (const text of EXTRA_TEXTS.slice(2)) {
        assert.equal(tok.decode(tok.encode(text)), `<s>${text.replace(' <mask>', '<mask>')}</s>`);
      }
    });
  });

  describe('tokenPieces', function () {
    const checkJoin = (ids: number[]): string[] => {
      const pieces = tok.tokenPieces(ids);
      assert.equal(pieces.length, ids.length);
      assert.equal(pieces.join(''), tok.decode(ids), `ids ${JSON.stringify(ids)}`);
      return pieces;
    };

    it('maps the decode examples one piece per token', function () {
      const pieces = checkJoin(DECODE_EXAMPLES[0][0]);
      assert.deepEqual(pieces.slice(0, 11), [
        '</s>',
        '<s>',
        '<s>',
        '<s>',
        'car',
        '<loc_53>',
        '<loc_333>',
        '<loc_933>',
        '<loc_774>',
        'door',
        ' handle',
      ]);
      for (const [ids] of DECODE_EXAMPLES) checkJoin(ids);
    });

    it('gives a multi-byte character to the token that completes it', function () {
      const ids = tok.encode(UNICODE_TEXT);
      const pieces = checkJoin(ids);
      const tokens = ids.map((id) => tok.idToToken(id));
      // 'Ü' is split into two byte-level tokens: 'Ã' then 'ľ'.
      assert.deepEqual(tokens.slice(0, 3), ['<s>', 'Ã', 'ľ']);
      assert.deepEqual(pieces.slice(0, 3), ['<s>', '', 'Ü']);
      // ' 🚗' spans 'ĠðŁ', 'ļ', 'Ĺ': the space comes first, the emoji with the last byte.
      const at = tokens.indexOf('ĠðŁ');
      assert.deepEqual(pieces.slice(at, at + 3), [' ', '', '🚗']);
      assert.ok(pieces.includes('<loc_5>'));
    });

    it('removes clean-up spaces from the piece that held them', function () {
      const ids = tok.encode("John 's car . Isn't it ?");
      const pieces = checkJoin(ids);
      const tokens = ids.map((id) => tok.idToToken(id));
      assert.equal(pieces[tokens.indexOf("Ġ'")], "'");
      assert.equal(pieces[tokens.indexOf('Ġ.')], '.');
      assert.equal(pieces[tokens.indexOf('Ġ?')], '?');
    });

    it('joins to decode on the extra texts and on an incomplete trailing character', function () {
      for (const text of EXTRA_TEXTS) checkJoin(tok.encode(text));
      const car = tok.encode(' 🚗').slice(1, -1);
      assert.deepEqual(checkJoin(car.slice(0, -1)), [' ', '\uFFFD']);
      assert.deepEqual(tok.tokenPieces([]), []);
    });

    it('joins to decode on random id sequences (byte tokens, clean-up tokens, added tokens)', function () {
      const rand = prng(20240611);
      const interesting = [...new Set(EXTRA_TEXTS.flatMap((t) => tok.encode(t)))];
      const singleByte: number[] = [];
      for (let id = 0; id < 50265; id++) if ([...tok.idToToken(id)!].length === 1) singleByte.push(id);
      assert.equal(singleByte.length, 256);
      const pick = (a: number[]): number => a[Math.floor(rand() * a.length)];
      for (let n = 0; n < 3000; n++) {
        const len = 1 + Math.floor(rand() * 24);
        const ids: number[] = [];
        for (let i = 0; i < len; i++) {
          const r = rand();
          if (r < 0.4) ids.push(pick(interesting));
          else if (r < 0.75) ids.push(pick(singleByte));
          else if (r < 0.9) ids.push(Math.floor(rand() * tok.vocabSize));
          else ids.push(50265 + Math.floor(rand() * 1024));
        }
        checkJoin(ids);
      }
    });
  });

  describe('other folder layouts give the same tokenizer', function () {
    const sameAsVendored = (other: FlorenceTokenizer): void => {
      assert.equal(other.vocabSize, tok.vocabSize);
      for (const [row, ids] of PROMPT_TABLE) assert.deepEqual(other.encode(promptOf(row)), ids, promptOf(row));
      for (const text of EXTRA_TEXTS) assert.deepEqual(other.encode(text), tok.encode(text), text);
      for (const [ids, text] of DECODE_EXAMPLES) assert.equal(other.decode(ids), text);
      for (let n = 0; n < 1000; n++) assert.equal(other.locTokenId(n), 50269 + n);
      FLORENCE_ADDED_TOKENS.forEach((t, i) => assert.equal(other.tokenToId(t), 50265 + i, t));
    };

    it('vocab.json + merges.txt + added_tokens.json + tokenizer_config.json', function () {
      const dir = tempDir(tmp, 'slow', {
        'vocab.json': join(VENDOR_DIR, 'vocab.json'),
        'merges.txt': join(VENDOR_DIR, 'merges.txt'),
        'added_tokens.json': join(VENDOR_DIR, 'added_tokens.json'),
        'tokenizer_config.json': join(VENDOR_DIR, 'tokenizer_config.json'),
      });
      const other = FlorenceTokenizer.fromDir(dir);
      sameAsVendored(other);
      assert.deepEqual(other.encode(UNICODE_TEXT), tok.encode(UNICODE_TEXT));
      assert.equal(other.modelMaxLength, 1024);
    });

    it('vocab.json + merges.txt only (Florence tokens appended in reference order)', function () {
      const dir = tempDir(tmp, 'bare', {
        'vocab.json': join(VENDOR_DIR, 'vocab.json'),
        'merges.txt': join(VENDOR_DIR, 'merges.txt'),
      });
      sameAsVendored(FlorenceTokenizer.fromDir(dir));
    });

    it('the Microsoft layout (plain BART tokenizer.json)', function () {
      if (!existsSync(MICROSOFT_TOKENIZER)) this.skip();
      const dir = tempDir(tmp, 'microsoft', { 'tokenizer.json': MICROSOFT_TOKENIZER });
      const other = FlorenceTokenizer.fromDir(dir);
      sameAsVendored(other);
      assert.deepEqual(other.encode(UNICODE_TEXT), tok.encode(UNICODE_TEXT));
    });

    it('fromJson leaves its input untouched', function () {
      const json = JSON.parse(readFileSync(join(VENDOR_DIR, 'tokenizer.json'), 'utf8')) as { truncation: unknown; added_tokens: unknown[] };
      const other = FlorenceTokenizer.fromJson(json, {});
      assert.notEqual(json.truncation, null);
      assert.equal(json.added_tokens.length, 1029);
      assert.deepEqual(other.encode('describe'), [0, 45091, 21700, 2]);
    });

    it('honours clean_up_tokenization_spaces: false', function () {
      const json = JSON.parse(readFileSync(join(VENDOR_DIR, 'tokenizer.json'), 'utf8')) as object;
      const raw = FlorenceTokenizer.fromJson(json, { clean_up_tokenization_spaces: false });
      const ids = tok.encode("John 's car .");
      assert.equal(raw.decode(ids), "<s>John 's car .</s>");
      assert.equal(raw.tokenPieces(ids).join(''), raw.decode(ids));
    });
  });

  describe('load errors name the folder and the file', function () {
    const throwsNaming = (dir: string, ...parts: string[]): void => {
      assert.throws(
        () => FlorenceTokenizer.fromDir(dir),
        (err: unknown) => {
          assert.ok(err instanceof Error);
          for (const p of [dir, ...parts]) assert.ok(err.message.includes(p), `"${err.message}" should mention ${p}`);
          return true;
        },
      );
    };

    it('a missing folder', function () {
      throwsNaming(join(tmp, 'does-not-exist'));
    });

    it('an empty folder', function () {
      const dir = tempDir(tmp, 'empty', {});
      throwsNaming(dir, 'tokenizer.json', 'vocab.json', 'merges.txt');
    });

    it('vocab.json without merges.txt', function () {
      const dir = tempDir(tmp, 'no-merges', { 'vocab.json': join(VENDOR_DIR, 'vocab.json') });
      throwsNaming(dir, 'merges.txt');
    });

    it('a broken tokenizer.json', function () {
      const dir = tempDir(tmp, 'broken', {});
      writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
      throwsNaming(dir, 'tokenizer.json');
    });

    it('a broken merges.txt line', function () {
      const dir = tempDir(tmp, 'bad-merges', { 'vocab.json': join(VENDOR_DIR, 'vocab.json') });
      writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\nĠ t\nnot-a-pair\n');
      throwsNaming(dir, 'merges.txt', 'line 3');
    });
  });

  describe('cross-check with @huggingface/transformers AutoTokenizer (dev-only oracle)', function () {
    type Oracle = {
      encode(text: string): number[];
      decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
    };
    let oracle: Oracle;

    before(async function () {
      const { AutoTokenizer, env } = await import('@huggingface/transformers');
      const root = join(tmp, 'oracle');
      mkdirSync(root);
      tempDir(root, 'florence2', {
        'tokenizer.json': join(VENDOR_DIR, 'tokenizer.json'),
        'tokenizer_config.json': join(VENDOR_DIR, 'tokenizer_config.json'),
      });
      // env is a process-wide singleton that other suites use too: set it for this load only.
      const saved = {
        allowRemoteModels: env.allowRemoteModels,
        allowLocalModels: env.allowLocalModels,
        localModelPath: env.localModelPath,
      };
      try {
        env.allowRemoteModels = false;
        env.allowLocalModels = true;
        env.localModelPath = root + '/';
        oracle = await AutoTokenizer.from_pretrained('florence2');
      } finally {
        Object.assign(env, saved);
      }
    });

    it('encodes the table prompts and the extra texts identically', function () {
      for (const [row, ids] of PROMPT_TABLE) {
        assert.deepEqual(oracle.encode(promptOf(row)), ids);
        assert.deepEqual(tok.encode(promptOf(row)), oracle.encode(promptOf(row)));
      }
      for (const text of EXTRA_TEXTS) assert.deepEqual(tok.encode(text), oracle.encode(text), text);
    });

    it('decodes identically (skip_special_tokens false, clean-up on)', function () {
      const seqs = [...DECODE_EXAMPLES.map(([ids]) => ids), ...EXTRA_TEXTS.map((t) => tok.encode(t))];
      const rand = prng(7);
      for (let n = 0; n < 200; n++)
        seqs.push(Array.from({ length: 1 + Math.floor(rand() * 20) }, () => Math.floor(rand() * tok.vocabSize)));
      for (const ids of seqs) {
        const expected = oracle.decode(ids, { skip_special_tokens: false });
        assert.equal(tok.decode(ids), expected);
        assert.equal(tok.tokenPieces(ids).join(''), expected);
      }
    });
  });
});
