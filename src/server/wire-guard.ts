/**
 * Request messages are checked on the wire before they are decoded. protobufjs decodes a repeated
 * field whole before any limit can be checked: 61 KB of gzip holding 21 million `classes` blocked the
 * event loop for 2.1 s. The scan here walks the wire format against the schema and stops at the first
 * field over its limit, so its cost is bounded by the limits, not by the message. A message that fails
 * the scan or does not parse becomes a {@link RejectedMessage}, which the handlers answer
 * INVALID_ARGUMENT (grpc-js answers a deserializer that throws with INTERNAL).
 */
import type * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { join } from 'node:path';
import { PROTO_FILE, protoDir } from 'florence2-client/proto';

/** What the scan enforces. Bytes fields are bounded by the message size alone. */
export interface WireLimits {
  /** Entries of any repeated field (`classes`). */
  maxRepeated: number;
  /** UTF-8 bytes of any string field except `request_id`. */
  maxStringBytes: number;
  /** UTF-8 bytes of a `request_id`. */
  maxRequestIdBytes: number;
}

/** Nesting of the request messages is shallow (StreamRequest → RunRequest → task → Image); anything deeper is hostile. */
const MAX_DEPTH = 8;
/** Fields (repeated entries aside) a message may carry, counting repeats of a singular field and unknown fields. */
const MAX_OTHER_FIELDS = 256;

/**
 * Why a message was refused: it does not parse; a field is over its limit; it is larger than the
 * message size limit (`size`, answered RESOURCE_EXHAUSTED like grpc-js's own size check); or the
 * memory budget is full (`budget`, retryable).
 */
export type RejectionReason = 'malformed' | 'limit' | 'size' | 'budget';

/** A request the server refuses without decoding it further. */
export class RejectedMessage {
  constructor(
    /** Dotted path of the offending field, or `request` when the message does not parse. */
    readonly field: string,
    readonly reason: RejectionReason,
    readonly message: string,
    /** The top-level `request_id`, when it could be read within its limit (Stream requests). */
    readonly requestId = '',
  ) {}
}

export function isRejected(msg: unknown): msg is RejectedMessage {
  return msg instanceof RejectedMessage;
}

/** Decoded bytes of each request message, for the memory budget (keyed by the decoded object). */
const messageBytes = new WeakMap<object, number>();

export function decodedBytes(msg: unknown): number {
  return typeof msg === 'object' && msg !== null ? (messageBytes.get(msg) ?? 0) : 0;
}

class Violation extends Error {
  constructor(
    readonly field: string,
    readonly reason: 'malformed' | 'limit' | 'size',
    message: string,
  ) {
    super(message);
  }
}

const malformed = (path: string, what: string) => new Violation(path || 'request', 'malformed', `the message does not parse: ${what}`);

/** What the scan read on the way: the top-level request_id, so that a rejected Stream request can still be answered by id. */
interface ScanNotes {
  requestId: string;
}

/** Thrown when a prefix scan reaches the end of what has been decompressed so far: no verdict yet. */
const INCOMPLETE = new Error('the prefix ends before the message does');

/**
 * Walks `buf[start, end)` as a `type` message; throws a Violation at the first problem.
 *
 * `buf` may hold only a prefix of the message (while it is being decompressed): then `end` can lie
 * beyond `buf`, and reaching the end of `buf` throws INCOMPLETE rather than a verdict. At the top of
 * a prefix scan `end` is the message size limit (`endIsSizeLimit`), so a field longer than what is
 * left of it is over the size limit, not malformed.
 */
function scan(
  type: protobuf.Type,
  buf: Uint8Array,
  start: number,
  end: number,
  path: string,
  depth: number,
  limits: WireLimits,
  notes: ScanNotes,
  endIsSizeLimit = false,
): void {
  if (depth > MAX_DEPTH) throw malformed(path, `nested deeper than ${MAX_DEPTH} messages`);
  const avail = Math.min(end, buf.length);
  const truncated = () => (end > avail ? INCOMPLETE : null);
  const reader = new protobuf.Reader(buf);
  reader.pos = start;
  reader.len = avail;
  const repeatedCounts = new Map<number, number>();
  let others = 0;
  while (reader.pos < avail) {
    let tag: number;
    try {
      tag = reader.uint32();
    } catch {
      throw truncated() ?? malformed(path, 'a truncated field tag');
    }
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === 0) throw malformed(path, 'field number 0');
    const field = type.fieldsById[id] as protobuf.Field | undefined;
    const name = field ? (path ? `${path}.${field.name}` : field.name) : path || 'request';
    if (field && wire !== expectedWireType(field)) throw malformed(name, `wire type ${wire} for a ${field.type} field`);
    if (field?.repeated) {
      const n = (repeatedCounts.get(id) ?? 0) + 1;
      if (n > limits.maxRepeated)
        throw new Violation(name, 'limit', `\`${name}\` has more than ${limits.maxRepeated} entries (the server's limit)`);
      repeatedCounts.set(id, n);
    } else if (++others > MAX_OTHER_FIELDS) {
      throw new Violation(name, 'limit', `the message repeats fields more than ${MAX_OTHER_FIELDS} times`);
    }
    try {
      switch (wire) {
        case 0:
          reader.skipType(0);
          break;
        case 1:
          reader.skip(8);
          break;
        case 5:
          reader.skip(4);
          break;
        case 2: {
          const len = reader.uint32();
          const from = reader.pos;
          if (len > end - from) {
            if (endIsSizeLimit)
              throw new Violation(name, 'size', `\`${name}\` makes the request larger than ${end} bytes (the server's message size limit)`);
            throw malformed(name, 'a length beyond the end of the message');
          }
          if (field?.resolvedType instanceof protobuf.Type) {
            scan(field.resolvedType, buf, from, from + len, name, depth + 1, limits, notes);
          } else if (field?.type === 'string') {
            const limit = field.name === 'request_id' ? limits.maxRequestIdBytes : limits.maxStringBytes;
            if (len > limit) throw new Violation(name, 'limit', `\`${name}\` is longer than ${limit} bytes (the server's limit)`);
            if (field.name === 'request_id' && depth === 0 && from + len <= avail)
              notes.requestId = Buffer.from(buf.buffer, buf.byteOffset + from, len).toString('utf8');
          }
          reader.pos = from + len;
          break;
        }
        default:
          // Groups (3, 4) are proto2-only and never valid here; 6 and 7 are not wire types.
          throw malformed(name, `wire type ${wire}`);
      }
    } catch (err) {
      if (err instanceof Violation || err === INCOMPLETE) throw err;
      throw truncated() ?? malformed(name, 'a truncated field');
    }
    if (reader.pos > end) throw malformed(name, 'a field beyond the end of the message');
  }
  if (truncated()) throw INCOMPLETE;
}

const FIXED64 = new Set(['double', 'fixed64', 'sfixed64']);
const FIXED32 = new Set(['float', 'fixed32', 'sfixed32']);

/** The wire type a field's values use (the request messages have no packed repeated scalars). */
function expectedWireType(field: protobuf.Field): number {
  if (field.resolvedType instanceof protobuf.Type || field.type === 'string' || field.type === 'bytes') return 2;
  if (FIXED64.has(field.type)) return 1;
  if (FIXED32.has(field.type)) return 5;
  // varints: integers, bool, enums
  return 0;
}

/** The request types of a service, by method path, from the same proto file the server loads. */
function requestTypes(serviceName: string): Map<string, protobuf.Type> {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : join(protoDir(), target));
  root.loadSync(PROTO_FILE, { keepCase: true }).resolveAll();
  const service = root.lookupService(serviceName);
  const out = new Map<string, protobuf.Type>();
  for (const m of Object.values(service.methods)) out.set(`/${serviceName}/${m.name}`, m.resolvedRequestType!);
  return out;
}

/** The request type and limits of every guarded method, by path: what a prefix scan needs. */
const guardedMethods = new Map<string, { type: protobuf.Type; limits: WireLimits }>();

/** Whether `path` is a method whose requests {@link guardedService} scans. */
export function isGuardedPath(path: string): boolean {
  return guardedMethods.has(path);
}

/**
 * Scans the first bytes of a request still being decompressed. Returns the rejection as soon as the
 * prefix proves one (a field over its limit, a length beyond the message size limit, bytes that do
 * not parse), or null while the prefix is consistent with an acceptable message.
 */
export function scanPrefix(path: string, prefix: Uint8Array, maxMessageBytes: number): RejectedMessage | null {
  const method = guardedMethods.get(path);
  if (!method) return null;
  const notes: ScanNotes = { requestId: '' };
  try {
    const sizeLimit = maxMessageBytes < 0 ? Number.MAX_SAFE_INTEGER : Math.max(maxMessageBytes, prefix.length);
    scan(method.type, prefix, 0, sizeLimit, '', 0, method.limits, notes, true);
    return null; // the whole message is here and passed; the full scan will say so again
  } catch (err) {
    if (err === INCOMPLETE) return null;
    if (err instanceof Violation) return new RejectedMessage(err.field, err.reason, err.message, notes.requestId);
    return new RejectedMessage('request', 'malformed', 'the message does not parse', notes.requestId);
  }
}

/** Decompressed "messages" that stand for a rejection found before decompression ended. */
const rejectedBeforeDecode = new WeakMap<Buffer, RejectedMessage>();

/** A stand-in message for `rejection`: the guarded deserializer of the call turns it back into the rejection. */
export function rejectionMarker(rejection: RejectedMessage): Buffer {
  const marker = Buffer.alloc(0);
  rejectedBeforeDecode.set(marker, rejection);
  return marker;
}

/**
 * The service definition with every request deserializer behind the scan. Deserializers never throw:
 * a bad message becomes a RejectedMessage for the handler to answer.
 */
export function guardedService(serviceName: string, definition: grpc.ServiceDefinition, limits: WireLimits): grpc.ServiceDefinition {
  const types = requestTypes(serviceName);
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, method] of Object.entries(definition)) {
    const type = types.get(method.path);
    if (!type) throw new Error(`no request type for ${method.path} in ${PROTO_FILE}`);
    const decode = method.requestDeserialize;
    guardedMethods.set(method.path, { type, limits });
    out[key] = {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        const early = rejectedBeforeDecode.get(buf);
        if (early) return early;
        const notes: ScanNotes = { requestId: '' };
        try {
          scan(type, buf, 0, buf.length, '', 0, limits, notes);
        } catch (err) {
          if (err instanceof Violation) return new RejectedMessage(err.field, err.reason, err.message, notes.requestId);
          return new RejectedMessage('request', 'malformed', 'the message does not parse', notes.requestId);
        }
        try {
          const msg = decode(buf) as object;
          messageBytes.set(msg, buf.length);
          return msg;
        } catch (err) {
          return new RejectedMessage('request', 'malformed', `the message does not parse: ${(err as Error).message}`, notes.requestId);
        }
      },
    };
  }
  return out;
}
