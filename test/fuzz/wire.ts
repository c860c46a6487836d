/**
 * Protobuf wire format by hand, for requests no well-behaved encoder would write: garbage,
 * truncated varints, wrong wire types, length prefixes past the end, deep groups, and repeated
 * fields far beyond any server limit (built straight into one buffer, cheap even at 10^6 entries).
 */
import fc from 'fast-check';

export const WT = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** A base-128 varint of a non-negative integer (up to 2^64 - 1 as a bigint). */
export function varint(value: number | bigint): Buffer {
  let v = BigInt(value);
  if (v < 0n) v = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType & 7));
}

/** A length-delimited field: tag, length, bytes. */
export function lenField(field: number, payload: Uint8Array | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  return Buffer.concat([tag(field, WT.LEN), varint(bytes.length), bytes]);
}

export function varintField(field: number, value: number | bigint): Buffer {
  return Buffer.concat([tag(field, WT.VARINT), varint(value)]);
}

/**
 * `count` copies of the length-delimited field `field` holding `payload`, written into one buffer
 * (e.g. 10^6 `classes` entries in a few MB without 10^6 small allocations).
 */
export function repeatedLenField(field: number, payload: Uint8Array | string, count: number): Buffer {
  const one = lenField(field, payload);
  const out = Buffer.allocUnsafe(one.length * count);
  one.copy(out, 0);
  // Doubling copy: log2(count) memcpy calls.
  let filled = one.length;
  while (filled < out.length) {
    const n = Math.min(filled, out.length - filled);
    out.copy(out, filled, 0, n);
    filled += n;
  }
  return out;
}

/** Field numbers that hit known fields of every request message, plus edge cases. */
const FIELD_NUMBERS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 2047, 2048, 19000, 536_870_911];

const fieldNumber = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FIELD_NUMBERS) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 536_870_911 }) },
);

/** One wire-format fragment, valid or not, as bytes plus a short description. */
export interface Fragment {
  bytes: Buffer;
  what: string;
}

const frag = (bytes: Buffer, what: string): Fragment => ({ bytes, what });

/** Fragments that are well-formed on their own (the message may still be nonsense). */
const wellFormed: fc.Arbitrary<Fragment> = fc.oneof(
  fc
    .tuple(fieldNumber, fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })))
    .map(([f, v]) => frag(varintField(f, v), `varint#${f}`)),
  fc
    .tuple(fieldNumber, fc.uint8Array({ minLength: 8, maxLength: 8 }))
    .map(([f, b]) => frag(Buffer.concat([tag(f, WT.I64), b]), `i64#${f}`)),
  fc
    .tuple(fieldNumber, fc.uint8Array({ minLength: 4, maxLength: 4 }))
    .map(([f, b]) => frag(Buffer.concat([tag(f, WT.I32), b]), `i32#${f}`)),
  fc.tuple(fieldNumber, fc.uint8Array({ maxLength: 48 })).map(([f, b]) => frag(lenField(f, b), `len#${f}`)),
  fc
    .tuple(fieldNumber, fc.integer({ min: 1, max: 40 }))
    .map(([f, d]) =>
      frag(Buffer.concat([...Array<Buffer>(d).fill(tag(f, WT.SGROUP)), ...Array<Buffer>(d).fill(tag(f, WT.EGROUP))]), `groups#${f}x${d}`),
    ),
);

/** Fragments that are malformed: a decoder must refuse them (or, for a few, skip them). */
const malformed: fc.Arbitrary<Fragment> = fc.oneof(
  // A varint whose continuation bit never ends.
  fc
    .tuple(fieldNumber, fc.integer({ min: 1, max: 12 }))
    .map(([f, n]) => frag(Buffer.concat([tag(f, WT.VARINT), Buffer.alloc(n, 0x80)]), `truncated-varint#${f}`)),
  // A tag that is itself a truncated varint.
  fc.integer({ min: 1, max: 6 }).map((n) => frag(Buffer.alloc(n, 0xff), 'truncated-tag')),
  // 11+ byte varints (over 64 bits).
  fc.tuple(fieldNumber, fc.integer({ min: 11, max: 20 })).map(([f, n]) => {
    const b = Buffer.alloc(n, 0xff);
    b[n - 1] = 0x01;
    return frag(Buffer.concat([tag(f, WT.VARINT), b]), `overlong-varint#${f}`);
  }),
  // Length prefix past the end of the message.
  fc
    .tuple(fieldNumber, fc.uint8Array({ maxLength: 16 }), fc.integer({ min: 1, max: 1 << 30 }))
    .map(([f, b, extra]) => frag(Buffer.concat([tag(f, WT.LEN), varint(b.length + extra), b]), `len-past-end#${f}`)),
  // Huge length prefixes (2^32 and beyond).
  fc
    .tuple(fieldNumber, fc.bigInt({ min: 1n << 31n, max: (1n << 64n) - 1n }))
    .map(([f, n]) => frag(Buffer.concat([tag(f, WT.LEN), varint(n)]), `len-huge#${f}`)),
  // Fixed-width values cut short.
  fc
    .tuple(fieldNumber, fc.integer({ min: 0, max: 7 }))
    .map(([f, n]) => frag(Buffer.concat([tag(f, WT.I64), Buffer.alloc(n, 0xab)]), `i64-short#${f}`)),
  fc
    .tuple(fieldNumber, fc.integer({ min: 0, max: 3 }))
    .map(([f, n]) => frag(Buffer.concat([tag(f, WT.I32), Buffer.alloc(n, 0xab)]), `i32-short#${f}`)),
  // Wire types 6 and 7 do not exist.
  fc
    .tuple(fieldNumber, fc.constantFrom(6, 7))
    .map(([f, w]) => frag(Buffer.concat([tag(f, w), Buffer.from([1, 2, 3])]), `wiretype${w}#${f}`)),
  // Groups: unterminated, unbalanced end, mismatched numbers, and nested very deep.
  fc
    .tuple(fieldNumber, fc.integer({ min: 1, max: 50 }))
    .map(([f, d]) => frag(Buffer.concat(Array<Buffer>(d).fill(tag(f, WT.SGROUP))), `unterminated-group#${f}x${d}`)),
  fieldNumber.map((f) => frag(tag(f, WT.EGROUP), `lone-end-group#${f}`)),
  fc
    .tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 101, max: 200 }))
    .map(([a, b]) => frag(Buffer.concat([tag(a, WT.SGROUP), tag(b, WT.EGROUP)]), `mismatched-group#${a}/${b}`)),
  fc.tuple(fc.constantFrom(1, 2, 9), fc.constantFrom(1_000, 10_000, 100_000, 300_000)).map(([f, d]) => {
    const open = tag(f, WT.SGROUP);
    const close = tag(f, WT.EGROUP);
    const out = Buffer.alloc((open.length + close.length) * d);
    for (let i = 0; i < d; i++) open.copy(out, i * open.length);
    for (let i = 0; i < d; i++) close.copy(out, d * open.length + i * close.length);
    return frag(out, `deep-groups#${f}x${d}`);
  }),
  // Known message fields (e.g. `image`, `options`, Run's members) with the wrong wire type.
  fc
    .tuple(
      fc.constantFrom(1, 2, 3, 4, 5, 6, 7),
      fc.constantFrom(WT.VARINT, WT.I64, WT.I32, WT.SGROUP),
      fc.uint8Array({ minLength: 0, maxLength: 9 }),
    )
    .map(([f, w, b]) => frag(Buffer.concat([tag(f, w), b]), `wrong-wiretype#${f}/${w}`)),
);

/**
 * A nested length-delimited field holding garbage, so the garbage reaches the sub-message decoders
 * (Image, Options, Region, Run's members, StreamRequest.request).
 */
function nested(depth: number): fc.Arbitrary<Fragment> {
  const inner =
    depth <= 0
      ? fc.array(fc.oneof(wellFormed, malformed), { minLength: 1, maxLength: 4 })
      : fc.array(fc.oneof(wellFormed, malformed, nested(depth - 1)), { minLength: 1, maxLength: 3 });
  return fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 7), inner).map(([f, parts]) => {
    const body = Buffer.concat(parts.map((p) => p.bytes));
    return frag(lenField(f, body), `nested#${f}{${parts.map((p) => p.what).join(',')}}`);
  });
}

/** A whole garbage message: random bytes, or a sequence of fragments with at least one malformed one likely. */
export const garbageMessage: fc.Arbitrary<Fragment> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 256 }).map((b) => frag(Buffer.from(b), `random[${b.length}]`)) },
  {
    weight: 5,
    arbitrary: fc
      .array(fc.oneof({ weight: 2, arbitrary: wellFormed }, { weight: 3, arbitrary: malformed }, { weight: 2, arbitrary: nested(2) }), {
        minLength: 1,
        maxLength: 6,
      })
      .map((parts) => frag(Buffer.concat(parts.map((p) => p.bytes)), parts.map((p) => p.what).join(' '))),
  },
);
