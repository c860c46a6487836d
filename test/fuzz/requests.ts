/**
 * Request shapes of every Florence2 RPC, their codec (the proto-loader serializers the typed client
 * and the server use), and the oracle: from a request as the server decodes it, the statuses it may
 * answer. The oracle restates the server's documented rules (limits, required fields, image
 * allowlist, regions inside the decoded image, no task tokens in text) and allows both OK and
 * INVALID_ARGUMENT only where the outcome depends on what a decoder or tokenizer makes of the input.
 */
import type * as grpc from '@grpc/grpc-js';
import { loadFlorence2Package } from 'florence2-client/proto';
import { TASK_TOKENS } from 'florence2-client/catalogue';
import type { ImageRegistry, ImageVerdict } from './images';

export const RPCS = [
  'Caption',
  'Detect',
  'DetectOpenVocabulary',
  'GroundPhrases',
  'Segment',
  'Ocr',
  'DescribeRegion',
  'Run',
  'Stream',
  'GetModelInfo',
] as const;
export type Rpc = (typeof RPCS)[number];

/** RunRequest's oneof members, each with its typed RPC. */
export const TASK_FAMILIES = ['caption', 'detect', 'open_vocabulary', 'phrase_grounding', 'segment', 'ocr', 'region'] as const;
export type Family = (typeof TASK_FAMILIES)[number];
export const RPC_OF: Record<Family, Rpc> = {
  caption: 'Caption',
  detect: 'Detect',
  open_vocabulary: 'DetectOpenVocabulary',
  phrase_grounding: 'GroundPhrases',
  segment: 'Segment',
  ocr: 'Ocr',
  region: 'DescribeRegion',
};
const FAMILY_OF: Partial<Record<Rpc, Family>> = Object.fromEntries(Object.entries(RPC_OF).map(([f, r]) => [r, f as Family]));

/** Field numbers (proto) used when requests are written by hand. */
export const FIELD = {
  image: 1,
  imageData: 1,
  classes: 2,
  ovOptions: 3,
  runOf: { caption: 1, detect: 2, open_vocabulary: 3, phrase_grounding: 4, segment: 5, ocr: 6, region: 7 } as Record<Family, number>,
  streamRequestId: 1,
  streamRequest: 2,
};

export const SERVICE_PATH = '/florence2.v1.Florence2/';

const service = loadFlorence2Package()['florence2.v1.Florence2'] as unknown as grpc.ServiceDefinition;

/** The proto-loader codec of an RPC's request (Stream: one StreamRequest) and response. */
export const codec = {
  encode(rpc: Rpc, request: unknown): Buffer {
    return Buffer.from(service[rpc].requestSerialize(request as never));
  },
  /** What the server's handler receives for these bytes; throws where protobufjs refuses them. */
  decode(rpc: Rpc, bytes: Buffer): any {
    return service[rpc].requestDeserialize(bytes);
  },
  decodeResponse(rpc: Rpc, bytes: Buffer): any {
    return service[rpc].responseDeserialize(bytes);
  },
};

/** The server's limits, as passed on its command line by the suite. */
export interface Limits {
  maxImagePixels: number;
  maxMessageBytes: number;
  maxNumBeams: number;
  maxNewTokens: number;
  maxTextChars: number;
  maxClasses: number;
  /** Decoder rows (prompts × beams) × max_new_tokens one request may ask for. */
  maxRequestTokens: number;
  /** Beams of a request that asks for none (the model's default). */
  defaultNumBeams: number;
  /** UTF-8 bytes of any string field but `request_id`, checked on the wire before decoding (4 × max_text_chars). */
  maxStringBytes: number;
  /** UTF-8 bytes of a Stream `request_id`, checked on the wire. */
  maxRequestIdBytes: number;
}

/**
 * Text up to this many UTF-16 units always fits the tiny model's encoder (1024 positions, 577 of
 * them visual tokens): at most 4 byte-level tokens per character plus the task prompt. Longer text
 * within max_text_chars may or may not fit, which only the tokenizer knows.
 */
const SAFE_TEXT_UNITS = 100;

export type Status = keyof typeof grpc.status;
/** What a request may get: OK, INVALID_ARGUMENT, or either (input only a decoder or the tokenizer can judge). */
export type Verdict = 'ok' | 'invalid' | 'either';

const worst = (...vs: Verdict[]): Verdict => (vs.includes('invalid') ? 'invalid' : vs.includes('either') ? 'either' : 'ok');

export function allowedStatuses(v: Verdict): Status[] {
  return v === 'ok' ? ['OK'] : v === 'invalid' ? ['INVALID_ARGUMENT'] : ['OK', 'INVALID_ARGUMENT'];
}

const ENUMS: Record<'caption' | 'detect' | 'region', string[]> = {
  caption: ['CAPTION_DETAIL_UNSPECIFIED', 'CAPTION_DETAIL_BRIEF', 'CAPTION_DETAIL_DETAILED', 'CAPTION_DETAIL_PARAGRAPH'],
  detect: ['DETECT_KIND_UNSPECIFIED', 'DETECT_KIND_OBJECTS', 'DETECT_KIND_DENSE_REGION_CAPTIONS', 'DETECT_KIND_REGION_PROPOSALS'],
  region: ['REGION_TASK_UNSPECIFIED', 'REGION_TASK_CATEGORY', 'REGION_TASK_DESCRIPTION', 'REGION_TASK_OCR'],
};

/** The oracle over decoded requests (proto-loader objects: enums as names, oneof names set, defaults filled). */
export class Oracle {
  constructor(
    readonly limits: Limits,
    readonly images: ImageRegistry,
  ) {}

  private image(img: any): { v: Verdict; verdict: ImageVerdict } {
    const data: Buffer | undefined = img?.data;
    if (!data || data.length === 0) return { v: 'invalid', verdict: { kind: 'invalid' } };
    const verdict = this.images.verdict(data);
    return { v: verdict.kind === 'valid' ? 'ok' : verdict.kind === 'maybe' ? 'either' : 'invalid', verdict };
  }

  /** Over a limit the server checks on the wire, before decoding: every string field and repeated field of the message counts, used or not. */
  private wire(r: any): Verdict {
    const strings: unknown[] = [r?.caption, r?.referring_expression, ...(Array.isArray(r?.classes) ? r.classes : [])];
    if (Array.isArray(r?.classes) && r.classes.length > this.limits.maxClasses) return 'invalid';
    return strings.some((v) => typeof v === 'string' && Buffer.byteLength(v, 'utf8') > this.limits.maxStringBytes) ? 'invalid' : 'ok';
  }

  /** Prompts × beams × new tokens against max_request_tokens. */
  private work(prompts: number, o: any): Verdict {
    const beams = Number(o?.num_beams ?? 0) || this.limits.defaultNumBeams;
    const tokens = Number(o?.max_new_tokens ?? 0) || this.limits.maxNewTokens;
    return prompts * beams * tokens > this.limits.maxRequestTokens ? 'invalid' : 'ok';
  }

  private text(value: unknown): Verdict {
    // Decoded string fields are strings ('' when unset).
    const t = typeof value === 'string' ? value.trim() : '';
    if (t === '' || t.length > this.limits.maxTextChars) return 'invalid';
    if (TASK_TOKENS.some((tok) => t.includes(tok))) return 'invalid';
    // Angle brackets may spell special tokens (<loc_1>, </s>, <pad>) the prompt builder may refuse.
    if (t.length > SAFE_TEXT_UNITS || /[<>]/.test(t)) return 'either';
    return 'ok';
  }

  private options(o: any): Verdict {
    if (!o) return 'ok';
    return Number(o.num_beams ?? 0) > this.limits.maxNumBeams || Number(o.max_new_tokens ?? 0) > this.limits.maxNewTokens
      ? 'invalid'
      : 'ok';
  }

  private region(r: any, img: ImageVerdict): Verdict {
    if (!r) return 'invalid';
    const { x1, y1, x2, y2 } = r as Record<string, number>;
    if (![x1, y1, x2, y2].every((v) => Number.isFinite(v))) return 'invalid';
    if (x1 > x2 || y1 > y2) return 'invalid';
    if (img.kind === 'valid') return x1 < 0 || y1 < 0 || x2 > img.width || y2 > img.height ? 'invalid' : 'ok';
    return 'either';
  }

  private selector(family: 'caption' | 'detect' | 'region', value: unknown): Verdict {
    // Decoded enums are names; a number is a value the proto does not define.
    return value === undefined || value === null || (typeof value === 'string' && ENUMS[family].includes(value)) ? 'ok' : 'invalid';
  }

  /** A typed request of `family`, decoded. */
  family(family: Family, r: any): Verdict {
    if (!r) return 'invalid';
    const prompts = family === 'open_vocabulary' ? (r.classes?.length ?? 0) : 1;
    return worst(this.wire(r), this.work(prompts, r.options), this.fields(family, r));
  }

  private fields(family: Family, r: any): Verdict {
    const img = this.image(r.image);
    switch (family) {
      case 'caption':
        return worst(this.selector('caption', r.detail), img.v, this.options(r.options));
      case 'detect':
        return worst(this.selector('detect', r.kind), img.v, this.options(r.options));
      case 'open_vocabulary': {
        const classes: unknown[] = r.classes ?? [];
        if (classes.length === 0 || classes.length > this.limits.maxClasses) return 'invalid';
        return worst(...classes.map((c) => this.text(c)), this.options(r.options), img.v);
      }
      case 'phrase_grounding':
        return worst(this.text(r.caption), this.options(r.options), img.v);
      case 'segment':
        if (r.target === 'region') return worst(this.options(r.options), this.region(r.region, img.verdict), img.v);
        if (r.target === 'referring_expression') return worst(this.options(r.options), this.text(r.referring_expression), img.v);
        return 'invalid';
      case 'ocr':
        return worst(this.options(r.options), img.v);
      case 'region':
        return worst(this.selector('region', r.task), this.region(r.region, img.verdict), this.options(r.options), img.v);
    }
  }

  run(r: any): Verdict {
    // Every member present is scanned on the wire, the one the decoder keeps or not.
    const wire = worst(...TASK_FAMILIES.map((f) => (r?.[f] ? this.wire(r[f]) : 'ok')));
    const member = r?.task as Family | undefined;
    if (!member || !(TASK_FAMILIES as readonly string[]).includes(member)) return 'invalid';
    return worst(wire, this.family(member, r[member]));
  }

  /** The request_id a Stream answer carries: a request_id over its wire limit is refused unread, answered under ''. */
  answerId(m: any): string {
    const id = String(m?.request_id ?? '');
    return Buffer.byteLength(id, 'utf8') > this.limits.maxRequestIdBytes ? '' : id;
  }

  /** One StreamRequest, decoded. */
  streamRequest(m: any): Verdict {
    if (!m?.request_id) return 'invalid';
    if (Buffer.byteLength(String(m.request_id), 'utf8') > this.limits.maxRequestIdBytes) return 'invalid';
    if (!m.request) return 'invalid';
    return this.run(m.request);
  }

  /** A unary request, decoded. */
  unary(rpc: Rpc, r: any): Verdict {
    if (rpc === 'GetModelInfo') return 'ok';
    if (rpc === 'Run') return this.run(r);
    const family = FAMILY_OF[rpc];
    if (!family) throw new Error(`no unary oracle for ${rpc}`);
    return this.family(family, r);
  }
}
