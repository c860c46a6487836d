/**
 * gRPC calls written by hand on node:http2, for what a well-behaved client library will not send:
 * raw bytes as the message, or a message compressed beforehand.
 */
import * as http2 from 'node:http2';
import { gzipSync } from 'node:zlib';

export interface RawOutcome {
  /** grpc-status; -1 when the stream ended without one (reset, connection lost). */
  code: number;
  message: string;
}

/** One HTTP/2 connection for many raw calls. */
export class RawGrpc {
  readonly session: http2.ClientHttp2Session;
  constructor(address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => {});
  }

  /**
   * Sends one message (`compressed`: already gzip-encoded bytes, flagged as such) to `path` and
   * resolves with the call's status.
   */
  call(path: string, body: Buffer, options: { compressed?: boolean; metadata?: Record<string, string> } = {}): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...(options.compressed ? { 'grpc-encoding': 'gzip' } : {}),
        ...options.metadata,
      };
      const req = this.session.request(headers);
      let code = -1;
      let message = '';
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined) {
          code = Number(h['grpc-status']);
          message = decodeURIComponent(String(h['grpc-message'] ?? ''));
        }
      };
      req.on('response', take);
      req.on('trailers', take);
      req.on('data', () => {});
      req.on('error', () => {});
      req.on('close', () => resolve({ code, message }));
      const prefix = Buffer.alloc(5);
      prefix[0] = options.compressed ? 1 : 0;
      prefix.writeUInt32BE(body.length, 1);
      req.end(Buffer.concat([prefix, body]));
    });
  }

  close(): void {
    this.session.close();
  }
}

/** A protobuf length prefix (varint). */
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** `tag, length, bytes` for a length-delimited field. */
function lengthDelimited(field: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2]), varint(body.length), body]);
}

/**
 * A gzip-compressed DetectRequest whose `image.data` is `bytes` zeros: tens of KiB on the wire,
 * `bytes` once decompressed.
 */
export function zeroImageBomb(bytes: number): Buffer {
  return gzipSync(lengthDelimited(1, lengthDelimited(1, Buffer.alloc(bytes))), { level: 9 });
}

/** A gzip-compressed OpenVocabularyRequest with `count` empty `classes` entries (two bytes each on the wire). */
export function classesBomb(count: number): Buffer {
  const entry = Buffer.from([(2 << 3) | 2, 0]);
  const body = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) entry.copy(body, i * 2);
  return gzipSync(body, { level: 9 });
}
