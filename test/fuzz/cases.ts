/**
 * The five case families of the fuzz corpus, generated with fast-check from one seed (`fc.sample`
 * is deterministic for a seed), each case carrying the statuses it may get:
 * 1. images: malformed images of every accepted format, header bombs, refused formats, through every image RPC;
 * 2. fields: wrong and extreme field values on every RPC (arbitraries over the request shapes);
 * 3. garbage: raw protobuf garbage as the request message;
 * 4. gzip: gzip-compressed requests holding megabytes of zeros, some over the message limit once inflated;
 * 5. repeated: repeated fields with 10^5..10^6 entries and huge strings, written by hand (some gzip-compressed).
 */
import fc from 'fast-check';
import { type CorpusImage, describeMutation, type ImageRegistry, type Mutation, mutate, pngZeros } from './images';
import type { FuzzCase, StreamMessage, UnaryCase } from './harness';
import {
  allowedStatuses,
  codec,
  FIELD,
  type Family,
  type Limits,
  type Oracle,
  RPC_OF,
  RPCS,
  type Rpc,
  type Status,
  TASK_FAMILIES,
} from './requests';
import { garbageMessage, lenField, repeatedLenField, varintField } from './wire';

export interface Corpus {
  valid: CorpusImage[];
  atLimit: CorpusImage;
  bombs: CorpusImage[];
  refused: CorpusImage[];
  registry: ImageRegistry;
}

export interface Ctx {
  oracle: Oracle;
  limits: Limits;
  corpus: Corpus;
}

const union = (a: Status[], b: Status[]): Status[] => [...new Set([...a, ...b])];

/** Short printable form of a request object: buffers and long strings summarised. */
export function summarize(value: unknown, registry: ImageRegistry, max = 240): string {
  const s = JSON.stringify(value, function (this: unknown, _k, v: unknown) {
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return `<${registry.name(Buffer.from((v as { data: number[] }).data))}>`;
    }
    if (typeof v === 'string' && v.length > 40) return `<str ${v.length} units: ${JSON.stringify(v.slice(0, 16))}...>`;
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    if (typeof v === 'bigint') return `${v}n`;
    if (Array.isArray(v) && v.length > 8) return [...v.slice(0, 4), `...${v.length} entries`];
    return v;
  });
  return s === undefined ? String(value) : s.length > max ? `${s.slice(0, max)}...` : s;
}

/** How a family request reaches the server: its typed RPC, Run's oneof, or a one-request Stream. */
type Via = 'typed' | 'run' | 'stream';

/**
 * A message over the size limit. Uncompressed, grpc-js refuses it as it arrives: RESOURCE_EXHAUSTED,
 * and a Stream ends with it. Compressed, the guarded inflate refuses it at the first problem met on the
 * way: the size, or a fault that the content's first bytes already show (answered in band on a Stream).
 */
function overLimit(gzip: boolean, content: Status[]): Status[] {
  return gzip
    ? union(
        ['RESOURCE_EXHAUSTED'],
        content.filter((s) => s !== 'OK'),
      )
    : ['RESOURCE_EXHAUSTED'];
}

function checkOk(rpc: Rpc): UnaryCase['checkOk'] {
  return (r: any) => {
    if (rpc === 'GetModelInfo') return r?.limits ? null : 'GetModelInfo answered without limits';
    const body = rpc === 'Run' ? r?.[r?.result] : r;
    return body?.meta?.request_id ? null : `an OK ${rpc} response without meta.request_id: ${JSON.stringify(r).slice(0, 200)}`;
  };
}

/** A unary case from a request object: encoded as the typed client would, judged as the server will decode it. */
export function unaryCase(
  ctx: Ctx,
  family: string,
  target: string,
  rpc: Exclude<Rpc, 'Stream'>,
  request: unknown,
  what: string,
  gzip = false,
): FuzzCase {
  const bytes = codec.encode(rpc, request);
  const content = allowedStatuses(ctx.oracle.unary(rpc, codec.decode(rpc, bytes)));
  const allowed = bytes.length > ctx.limits.maxMessageBytes ? overLimit(gzip, content) : content;
  return { kind: 'unary', family, target, what, rpc, bytes, allowed, gzip, checkOk: checkOk(rpc) };
}

/** A stream message from a StreamRequest object. */
function streamMessage(ctx: Ctx, request: unknown, gzip: boolean): StreamMessage {
  const bytes = codec.encode('Stream', request);
  const decoded = codec.decode('Stream', bytes);
  const content = allowedStatuses(ctx.oracle.streamRequest(decoded));
  return {
    bytes,
    id: ctx.oracle.answerId(decoded),
    allowed: bytes.length > ctx.limits.maxMessageBytes ? overLimit(gzip, content) : content,
  };
}

export function streamCase(ctx: Ctx, family: string, target: string, requests: unknown[], what: string, gzip = false): FuzzCase {
  const messages = requests.map((r) => streamMessage(ctx, r, gzip));
  const tooBig = !gzip && messages.some((m) => m.bytes.length > ctx.limits.maxMessageBytes);
  return { kind: 'stream', family, target, what, messages, callAllowed: tooBig ? ['RESOURCE_EXHAUSTED'] : ['OK'], gzip };
}

function viaCase(ctx: Ctx, family: string, fam: Family, via: Via, request: unknown, what: string, gzip = false): FuzzCase {
  switch (via) {
    case 'typed':
      return unaryCase(ctx, family, RPC_OF[fam], RPC_OF[fam] as Exclude<Rpc, 'Stream'>, request, what, gzip);
    case 'run':
      return unaryCase(ctx, family, `Run.${fam}`, 'Run', { [fam]: request }, what, gzip);
    case 'stream':
      return streamCase(ctx, family, `Stream.${fam}`, [{ request_id: 'img', request: { [fam]: request } }], what, gzip);
  }
}

/** A request of `fam` whose other fields are valid, carrying `image`. */
function withImage(fam: Family, image: unknown, variant: number): Record<string, unknown> {
  const region = { x1: 0, y1: 0, x2: 1, y2: 1 };
  switch (fam) {
    case 'caption':
      return { image, detail: ['CAPTION_DETAIL_BRIEF', 'CAPTION_DETAIL_DETAILED', 'CAPTION_DETAIL_PARAGRAPH'][variant % 3] };
    case 'detect':
      return { image, kind: ['DETECT_KIND_OBJECTS', 'DETECT_KIND_DENSE_REGION_CAPTIONS', 'DETECT_KIND_REGION_PROPOSALS'][variant % 3] };
    case 'open_vocabulary':
      return { image, classes: ['car'] };
    case 'phrase_grounding':
      return { image, caption: 'a car' };
    case 'segment':
      return variant % 2 ? { image, region } : { image, referring_expression: 'the car' };
    case 'ocr':
      return { image, with_regions: variant % 2 === 1 };
    case 'region':
      return { image, region, task: ['REGION_TASK_CATEGORY', 'REGION_TASK_DESCRIPTION', 'REGION_TASK_OCR'][variant % 3] };
  }
}

const familyArb = fc.constantFrom(...TASK_FAMILIES);
const viaArb = fc.constantFrom<Via>('typed', 'typed', 'run', 'stream');

// ---------------------------------------------------------------- family 1: images

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((at) => ({ kind: 'truncate' as const, at })),
  fc.array(fc.nat(), { minLength: 1, maxLength: 8 }).map((bits) => ({ kind: 'flip' as const, bits })),
  fc
    .tuple(
      fc.nat(),
      fc.array(fc.oneof(fc.constantFrom(0, 0xff, 0x7f, 0x80), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    )
    .map(([offset, bytes]) => ({ kind: 'overwrite' as const, offset, bytes })),
  fc.nat().map((from) => ({ kind: 'zero-tail' as const, from })),
);

export function imageCases(ctx: Ctx, seed: number, numRuns: number): FuzzCase[] {
  const { corpus } = ctx;
  const source: fc.Arbitrary<{ img: CorpusImage; how: string }> = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...corpus.valid).map((img) => ({ img, how: 'as is' })) },
    { weight: 1, arbitrary: fc.constant({ img: corpus.atLimit, how: 'as is' }) },
    {
      weight: 40,
      arbitrary: fc.tuple(fc.constantFrom(...corpus.valid), mutationArb).map(([base, m]) => {
        const bytes = mutate(base.bytes, m);
        const img = corpus.registry.add({ name: `${base.name} ${describeMutation(m)}`, bytes, verdict: { kind: 'maybe' } });
        return { img, how: describeMutation(m) };
      }),
    },
    { weight: 15, arbitrary: fc.constantFrom(...corpus.bombs).map((img) => ({ img, how: 'bomb' })) },
    { weight: 15, arbitrary: fc.constantFrom(...corpus.refused).map((img) => ({ img, how: 'refused' })) },
    {
      weight: 4,
      arbitrary: fc.uint8Array({ minLength: 0, maxLength: 512 }).map((b) => ({
        img: { name: `random[${b.length}]`, bytes: Buffer.from(b), verdict: { kind: 'invalid' as const } },
        how: 'random',
      })),
    },
  );
  const arb = fc.tuple(source, familyArb, viaArb, fc.nat(5));
  return fc.sample(arb, { seed, numRuns }).map(([{ img }, fam, via, variant]) => {
    const name = img.name;
    return viaCase(ctx, 'images', fam, via, withImage(fam, { data: img.bytes }, variant), `${name} (${img.bytes.length} B)`);
  });
}

// ---------------------------------------------------------------- family 2: fields

const BIG = (n: number) => [
  'x'.repeat(n),
  `${' '.repeat(n)}car`,
  '\u{1F600}'.repeat(Math.floor(n / 2)),
  'car '.repeat(Math.floor(n / 4)),
  '\u0000'.repeat(n),
];
const BIG_STRINGS = [2000, 2001, 5000, 100_000, 1_000_000].flatMap(BIG);

const textArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      'car',
      'a car',
      'the red car on the left',
      'automobile',
      'A green car parked in front of a yellow building.',
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom('', ' ', '\t\n\r\v\f', '\u00a0\u2003\u3000\ufeff', '\u2028\u2029') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '\u0000',
      '\u200b',
      'car\u0000truck',
      '\ud800',
      'a\udfffb',
      '\udc00\ud800',
      '\u202eRTL override',
      'e\u0301\u0301\u0301\u0301\u0301',
      '\u{1F600}\u{1F697}',
      '\u0007\u001b[31mred\u001b[0m',
      'line1\nline2\r\nline3',
      '%s%n%x $& $1 $` {input} {{input}}',
      '<OD>',
      'find <CAPTION> here',
      '<OPEN_VOCABULARY_DETECTION>car',
      '<loc_0><loc_0><loc_999><loc_999>',
      '</s><s>',
      '<pad>',
      '<unk>car',
      '<loc_1000>',
      '\\u0000',
      '${process.exit(1)}',
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom(...BIG_STRINGS) },
  { weight: 1, arbitrary: fc.constantFrom(100, 101, 150, 400).map((n) => 'a'.repeat(n)) },
  // Not strings: protobufjs turns them into strings (String(value)).
  { weight: 1, arbitrary: fc.constantFrom(0, 42, -1, NaN, true, false, 1e21) },
);

const uint32Arb = (valid: number[], invalid: number[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...valid) },
    { weight: 3, arbitrary: fc.constantFrom(...invalid) },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.double() },
    { weight: 1, arbitrary: fc.constantFrom(2 ** 32, 2 ** 32 + 3, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, -0, NaN, Infinity, -Infinity) },
    { weight: 1, arbitrary: fc.constantFrom('2', '1e3', 'abc', '', '-1', '0x10', ' 3 ') },
  );

const optionsArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant({}) },
  {
    weight: 6,
    arbitrary: fc.record(
      {
        num_beams: uint32Arb([0, 1, 1, 2, 3, 8], [9, 16, 100, 2 ** 31, 2 ** 32 - 1, -1, -(2 ** 31)]),
        max_new_tokens: uint32Arb([0, 1, 2, 7, 64, 1024], [1025, 4096, 2 ** 31, 2 ** 32 - 1, -1]),
        include_raw_text: fc.oneof(fc.boolean(), fc.constantFrom(0, 1, 'yes', '', null)),
        include_scores: fc.oneof(fc.boolean(), fc.constantFrom(0, 1, 'no', null)),
      },
      { requiredKeys: [] },
    ),
  },
);

const coordArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -3, max: 70 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 16, 17, 20, 23, 24, 30, 31, 32, 33, 48, 64, 0.5, 47.999, 64.0001, -0, -1e-9) },
  { weight: 2, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 1e308, -1e308, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 1) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom('5', 'abc', null) },
);

const regionArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant({}) },
  { weight: 8, arbitrary: fc.record({ x1: coordArb, y1: coordArb, x2: coordArb, y2: coordArb }, { requiredKeys: [] }) },
  // Ordered boxes inside 16×16, so that valid regions come up often.
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 0, max: 16 }),
      )
      .map(([a, b, c, d]) => ({ x1: Math.min(a, c), y1: Math.min(b, d), x2: Math.max(a, c), y2: Math.max(b, d) })),
  },
);

const enumArb = (names: string[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...names) },
    { weight: 2, arbitrary: fc.constantFrom(0, 1, 2, 3) },
    { weight: 3, arbitrary: fc.constantFrom(4, 5, 99, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 1.5) },
    { weight: 1, arbitrary: fc.constantFrom(`${names[1].replace(/_[A-Z]+$/, '')}_FOO`, 'brief', '', 'OBJECTS') },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

function imageArb(corpus: Corpus): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...corpus.valid).map((img) => ({ data: img.bytes })) },
    { weight: 1, arbitrary: fc.constantFrom(...corpus.valid).map((img) => ({ data: img.bytes.toString('base64') })) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant({}) },
    { weight: 1, arbitrary: fc.constant({ data: Buffer.alloc(0) }) },
    { weight: 1, arbitrary: fc.constantFrom(...corpus.refused, ...corpus.bombs).map((img) => ({ data: img.bytes })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ data: Buffer.from(b) })) },
    // Strings for a bytes field: protobufjs reads them as base64.
    { weight: 1, arbitrary: fc.constantFrom('', '////', 'AAAA', 'R0lGODlh').map((s) => ({ data: s })) },
  );
}

function classesArb(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(textArb, { minLength: 1, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constantFrom(32, 33, 100, 1000).map((n) => Array.from({ length: n }, (_, i) => `class ${i}`)) },
    { weight: 1, arbitrary: fc.constantFrom(['car', ''], ['car', ' '], ['car', '<OD>'], ['car', 'x'.repeat(2001)]) },
  );
}

function familyRequestArb(fam: Family, corpus: Corpus): fc.Arbitrary<Record<string, unknown>> {
  const image = imageArb(corpus);
  const opt = { requiredKeys: [] as never[] };
  switch (fam) {
    case 'caption':
      return fc.record(
        {
          image,
          detail: enumArb(['CAPTION_DETAIL_UNSPECIFIED', 'CAPTION_DETAIL_BRIEF', 'CAPTION_DETAIL_DETAILED', 'CAPTION_DETAIL_PARAGRAPH']),
          options: optionsArb,
        },
        opt,
      );
    case 'detect':
      return fc.record(
        {
          image,
          kind: enumArb([
            'DETECT_KIND_UNSPECIFIED',
            'DETECT_KIND_OBJECTS',
            'DETECT_KIND_DENSE_REGION_CAPTIONS',
            'DETECT_KIND_REGION_PROPOSALS',
          ]),
          options: optionsArb,
        },
        opt,
      );
    case 'open_vocabulary':
      return fc.record({ image, classes: classesArb(), options: optionsArb }, opt);
    case 'phrase_grounding':
      return fc.record({ image, caption: textArb, options: optionsArb }, opt);
    case 'segment':
      return fc.oneof(
        fc.record({ image, referring_expression: textArb, options: optionsArb }, opt),
        fc.record({ image, region: regionArb, options: optionsArb }, opt),
        // The oneof unset, or both members set (the decoder keeps one).
        fc.record({ image, options: optionsArb }, opt),
        fc.record({ image, referring_expression: textArb, region: regionArb }, opt),
      );
    case 'ocr':
      return fc.record(
        { image, with_regions: fc.oneof(fc.boolean(), fc.constantFrom(0, 1, 'true', 'false', '', null)), options: optionsArb },
        opt,
      );
    case 'region':
      return fc.record(
        {
          image,
          region: regionArb,
          task: enumArb(['REGION_TASK_UNSPECIFIED', 'REGION_TASK_CATEGORY', 'REGION_TASK_DESCRIPTION', 'REGION_TASK_OCR']),
          options: optionsArb,
        },
        opt,
      );
  }
}

function runRequestArb(corpus: Corpus): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    { weight: 8, arbitrary: familyArb.chain((fam) => familyRequestArb(fam, corpus).map((r) => ({ [fam]: r }))) },
    { weight: 1, arbitrary: fc.constant({}) },
    { weight: 1, arbitrary: familyArb.map((fam) => ({ [fam]: {} })) },
    // Two members of the oneof at once.
    {
      weight: 1,
      arbitrary: fc
        .tuple(familyArb, familyArb)
        .chain(([a, b]) => fc.tuple(familyRequestArb(a, corpus), familyRequestArb(b, corpus)).map(([ra, rb]) => ({ [a]: ra, [b]: rb }))),
    },
  );
}

const requestIdArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 99 }).map((i) => `r${i}`) },
  { weight: 2, arbitrary: fc.constantFrom('', 'dup', 'dup') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(100_000), 'y'.repeat(1_000_000), ' ', '\u0000', '\ud800', '\n', '\u{1F600}') },
  { weight: 1, arbitrary: fc.constantFrom(0, 7, null, undefined) },
);

export function fieldCases(ctx: Ctx, seed: number, numRuns: number): FuzzCase[] {
  const { corpus } = ctx;
  type Drawn = { rpc: Rpc; request: unknown };
  const typed: fc.Arbitrary<Drawn> = fc.oneof(
    ...TASK_FAMILIES.map((fam) => familyRequestArb(fam, corpus).map((r): Drawn => ({ rpc: RPC_OF[fam], request: r }))),
  );
  const arb: fc.Arbitrary<Drawn> = fc.oneof(
    { weight: 7, arbitrary: typed },
    { weight: 1, arbitrary: runRequestArb(corpus).map((r): Drawn => ({ rpc: 'Run', request: r })) },
    {
      weight: 1,
      arbitrary: fc
        .array(
          fc.record(
            {
              request_id: requestIdArb,
              request: fc.oneof({ weight: 6, arbitrary: runRequestArb(corpus) }, { weight: 1, arbitrary: fc.constant(undefined) }),
            },
            { requiredKeys: [] },
          ),
          {
            minLength: 1,
            maxLength: 5,
          },
        )
        .map((msgs): Drawn => ({ rpc: 'Stream', request: msgs })),
    },
    {
      weight: 1,
      arbitrary: fc
        .oneof(fc.constant({}), fc.constant({ unknown_field: 1 }), fc.dictionary(fc.string(), fc.string()))
        .map((r): Drawn => ({ rpc: 'GetModelInfo', request: r })),
    },
  );
  return fc.sample(arb, { seed, numRuns }).map(({ rpc, request }) => {
    const what = summarize(request, corpus.registry);
    if (rpc === 'Stream') {
      const msgs = request as Record<string, unknown>[];
      const target = `Stream.${msgs.map((m) => Object.keys((m.request as object) ?? {})[0] ?? 'none').join('+')}`;
      return streamCase(ctx, 'fields', target.length > 60 ? 'Stream.many' : target, msgs, what);
    }
    const target = rpc === 'Run' ? `Run.${Object.keys(request as object)[0] ?? 'none'}` : rpc;
    return unaryCase(ctx, 'fields', target, rpc, request, what);
  });
}

// ---------------------------------------------------------------- family 3: garbage protobuf

/** Small valid requests per RPC (a 1×1 PNG), to truncate and to splice garbage into. */
function baseRequests(corpus: Corpus): Record<Rpc, unknown> {
  const image = { data: corpus.valid.find((v) => v.name === 'png-1x1')!.bytes };
  return {
    Caption: { image, detail: 'CAPTION_DETAIL_BRIEF', options: { num_beams: 1 } },
    Detect: { image, options: { max_new_tokens: 7 } },
    DetectOpenVocabulary: { image, classes: ['car', 'truck'] },
    GroundPhrases: { image, caption: 'a car' },
    Segment: { image, referring_expression: 'the car' },
    Ocr: { image, with_regions: true },
    DescribeRegion: { image, region: { x1: 0, y1: 0, x2: 1, y2: 1 }, task: 'REGION_TASK_OCR' },
    Run: { detect: { image, kind: 'DETECT_KIND_OBJECTS' } },
    Stream: { request_id: 'g', request: { caption: { image } } },
    GetModelInfo: {},
  };
}

/** Judges raw bytes: refused by protobufjs → INVALID_ARGUMENT; decoded → the oracle, or INVALID_ARGUMENT from a stricter reader. */
function rawAllowed(ctx: Ctx, rpc: Rpc, bytes: Buffer, gzip = false): { decodes: boolean; allowed: Status[]; id: string | null } {
  if (bytes.length > ctx.limits.maxMessageBytes) return { decodes: true, allowed: overLimit(gzip, ['INVALID_ARGUMENT']), id: null };
  let decoded: any;
  try {
    decoded = codec.decode(rpc, bytes);
  } catch {
    return { decodes: false, allowed: ['INVALID_ARGUMENT'], id: null };
  }
  const v = rpc === 'Stream' ? ctx.oracle.streamRequest(decoded) : ctx.oracle.unary(rpc, decoded);
  return {
    decodes: true,
    allowed: union(allowedStatuses(v), ['INVALID_ARGUMENT']),
    id: rpc === 'Stream' ? String(decoded.request_id) : null,
  };
}

export function garbageCases(ctx: Ctx, seed: number, numRuns: number): FuzzCase[] {
  const bases = baseRequests(ctx.corpus);
  const payload = (rpc: Rpc): fc.Arbitrary<{ bytes: Buffer; what: string }> => {
    const base = codec.encode(rpc, bases[rpc]);
    return fc.oneof(
      { weight: 7, arbitrary: garbageMessage },
      {
        weight: 2,
        arbitrary: fc
          .nat(base.length)
          .map((at) => ({ bytes: Buffer.from(base.subarray(0, at)), what: `valid ${rpc} cut at ${at}/${base.length}` })),
      },
      { weight: 1, arbitrary: garbageMessage.map((g) => ({ bytes: Buffer.concat([base, g.bytes]), what: `valid ${rpc} + ${g.what}` })) },
      { weight: 1, arbitrary: garbageMessage.map((g) => ({ bytes: Buffer.concat([g.bytes, base]), what: `${g.what} + valid ${rpc}` })) },
    );
  };
  type Drawn = { rpc: Rpc; ps: { bytes: Buffer; what: string }[] };
  const arb: fc.Arbitrary<Drawn> = fc
    .constantFrom<Rpc>(...RPCS)
    .chain((rpc): fc.Arbitrary<Drawn> =>
      rpc === 'Stream'
        ? fc.array(payload('Stream'), { minLength: 1, maxLength: 3 }).map((ps): Drawn => ({ rpc, ps }))
        : payload(rpc).map((p): Drawn => ({ rpc, ps: [p] })),
    );
  return fc.sample(arb, { seed, numRuns }).map(({ rpc, ps }): FuzzCase => {
    const what = ps
      .map((p) => `${p.what} [${p.bytes.length} B]`)
      .join(' | ')
      .slice(0, 400);
    if (rpc === 'Stream') {
      const messages = ps.map((p) => {
        const j = rawAllowed(ctx, 'Stream', p.bytes);
        // The server's wire scan is stricter than protobufjs (groups, wire types, field 0): any message may be refused unread.
        return { bytes: p.bytes, id: j.decodes ? j.id : null, allowed: j.allowed, lenient: true };
      });
      return { kind: 'stream', family: 'garbage', target: 'Stream', what, messages, callAllowed: ['OK', 'INVALID_ARGUMENT'] };
    }
    const { allowed } = rawAllowed(ctx, rpc, ps[0].bytes);
    return { kind: 'unary', family: 'garbage', target: rpc, what, rpc: rpc, bytes: ps[0].bytes, allowed };
  });
}

// ---------------------------------------------------------------- family 4: gzip bombs

const MiB = 1 << 20;

/** The zeros-image size whose Detect request encodes to exactly `target` bytes. */
function zerosForEncodedSize(target: number): number {
  let n = target - 16;
  for (let i = 0; i < 5; i++) n += target - codec.encode('Detect', { image: { data: Buffer.alloc(n) } }).length;
  return n;
}

export function gzipCases(ctx: Ctx, seed: number, numRuns: number): FuzzCase[] {
  const { limits, corpus } = ctx;
  const png = corpus.valid.find((v) => v.name === 'png-rgb-64x48')!;
  const exact = zerosForEncodedSize(limits.maxMessageBytes);
  const sizeArb = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(exact - 1, exact, exact + 1, MiB, 4 * MiB, 9 * MiB, 16 * MiB, 24 * MiB) },
    { weight: 3, arbitrary: fc.integer({ min: MiB, max: 20 * MiB }) },
  );
  const shape = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(sizeArb, familyArb, viaArb).map(([n, fam, via]) => ({ kind: 'zeros' as const, n, fam, via })) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.integer({ min: MiB, max: 12 * MiB }), familyArb).map(([n, fam]) => ({ kind: 'padded-png' as const, n, fam })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(sizeArb, fc.constantFrom<Rpc>(...RPCS)).map(([n, rpc]) => ({ kind: 'zero-message' as const, n, rpc })),
    },
    { weight: 1, arbitrary: fc.tuple(familyArb, viaArb).map(([fam, via]) => ({ kind: 'valid' as const, fam, via })) },
  );
  const out: FuzzCase[] = fc.sample(shape, { seed, numRuns: numRuns - 1 }).map((s): FuzzCase => {
    switch (s.kind) {
      case 'zeros':
        return viaCase(ctx, 'gzip', s.fam, s.via, withImage(s.fam, { data: Buffer.alloc(s.n) }, 0), `image = ${s.n} zero bytes`, true);
      case 'padded-png': {
        const bytes = Buffer.concat([png.bytes, Buffer.alloc(s.n)]);
        corpus.registry.add({ name: `${png.name} + ${s.n} zeros`, bytes, verdict: { kind: 'maybe' } });
        return viaCase(
          ctx,
          'gzip',
          s.fam,
          'typed',
          withImage(s.fam, { data: bytes }, 0),
          `${png.name} followed by ${s.n} zero bytes`,
          true,
        );
      }
      case 'zero-message': {
        const bytes = Buffer.alloc(s.n);
        const j = rawAllowed(ctx, s.rpc, bytes, true);
        const what = `the whole message is ${s.n} zero bytes`;
        if (s.rpc === 'Stream') {
          // Compressed, even a message over the limit is refused in band (or the call, when its id cannot be read).
          const call: Status[] = ['OK', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED'];
          return {
            kind: 'stream',
            family: 'gzip',
            target: 'Stream',
            what,
            gzip: true,
            messages: [{ bytes, id: j.decodes ? j.id : null, allowed: j.allowed }],
            callAllowed: call,
          };
        }
        return { kind: 'unary', family: 'gzip', target: s.rpc, what, rpc: s.rpc, bytes, allowed: j.allowed, gzip: true };
      }
      case 'valid':
        return viaCase(ctx, 'gzip', s.fam, s.via, withImage(s.fam, { data: png.bytes }, 0), `${png.name}, compressed`, true);
    }
  });
  // A real PNG decompression bomb: 5000×5000 of zeros (75 MB of pixels in a few KB), refused by its header.
  const bomb = corpus.registry.add({ name: 'png-zeros-5000x5000', bytes: pngZeros(5000, 5000), verdict: { kind: 'invalid' } });
  out.push(unaryCase(ctx, 'gzip', 'Detect', 'Detect', { image: { data: bomb.bytes } }, `${bomb.name} (${bomb.bytes.length} B)`, true));
  return out;
}

// ---------------------------------------------------------------- family 5: oversized repeated fields

export function repeatedCases(ctx: Ctx, seed: number, numRuns: number): FuzzCase[] {
  const { limits, corpus } = ctx;
  const png = corpus.valid.find((v) => v.name === 'png-1x1')!.bytes;
  const imageField = lenField(FIELD.image, lenField(FIELD.imageData, png));
  const options = lenField(FIELD.ovOptions, varintField(1, 1));
  const shape = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('many-classes' as const),
        n: fc.oneof(fc.constantFrom(100_000, 1_000_000), fc.integer({ min: 100_000, max: 1_000_000 })),
        entry: fc.constantFrom('', 'c', 'car', 'automobile-class', 'x'.repeat(40)),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('huge-strings' as const),
        n: fc.integer({ min: 1, max: 4 }),
        entry: fc.constantFrom(MiB, 2 * MiB, 3 * MiB).map((len) => 'c'.repeat(len)),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('repeated-image' as const),
        n: fc.integer({ min: 100_000, max: 500_000 }),
        entry: fc.constant('GIF89a'),
      }),
    },
  );
  const arb = fc.record({ shape, gzip: fc.boolean(), via: fc.constantFrom<'typed' | 'run' | 'stream'>('typed', 'typed', 'run', 'stream') });
  return fc.sample(arb, { seed, numRuns }).map(({ shape: s, gzip, via }): FuzzCase => {
    let ov: Buffer;
    let what: string;
    if (s.kind === 'repeated-image') {
      // The singular `image` field written n times (each an undecodable image), then one class.
      ov = Buffer.concat([repeatedLenField(FIELD.image, lenField(FIELD.imageData, s.entry), s.n), lenField(FIELD.classes, 'car'), options]);
      what = `image field repeated ${s.n}x`;
    } else {
      ov = Buffer.concat([imageField, repeatedLenField(FIELD.classes, s.entry, s.n), options]);
      what = `classes: ${s.n} x ${JSON.stringify(s.entry.length > 12 ? `<${s.entry.length} chars>` : s.entry)}`;
    }
    const size = (b: Buffer): Status[] =>
      b.length > limits.maxMessageBytes ? overLimit(gzip, ['INVALID_ARGUMENT']) : ['INVALID_ARGUMENT'];
    what = `${what}${gzip ? ', gzip' : ''}`;
    if (via === 'typed') {
      return {
        kind: 'unary',
        family: 'repeated',
        target: 'DetectOpenVocabulary',
        what: `${what} [${ov.length} B]`,
        rpc: 'DetectOpenVocabulary',
        bytes: ov,
        allowed: size(ov),
        gzip,
      };
    }
    const run = lenField(FIELD.runOf.open_vocabulary, ov);
    if (via === 'run')
      return {
        kind: 'unary',
        family: 'repeated',
        target: 'Run.open_vocabulary',
        what: `${what} [${run.length} B]`,
        rpc: 'Run',
        bytes: run,
        allowed: size(run),
        gzip,
      };
    const msg = Buffer.concat([lenField(FIELD.streamRequestId, 'big'), lenField(FIELD.streamRequest, run)]);
    const over = msg.length > limits.maxMessageBytes;
    return {
      kind: 'stream',
      family: 'repeated',
      target: 'Stream.open_vocabulary',
      what: `${what} [${msg.length} B]`,
      gzip,
      // Refused in band (for `big`) or as the call's status.
      messages: [{ bytes: msg, id: 'big', allowed: size(msg) }],
      callAllowed: over && !gzip ? ['RESOURCE_EXHAUSTED'] : ['OK', 'INVALID_ARGUMENT'],
    };
  });
}
