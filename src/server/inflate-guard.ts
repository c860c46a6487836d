/**
 * Compressed requests, decompressed under guard. grpc-js inflates a compressed message whole (up to
 * the message size limit) on the main thread's callbacks before any deserializer runs: a 64 KB gzip
 * of 21 million `classes` costs a 42 MB inflate and copy, and a 63 MiB image of zeros a 50 MiB one,
 * only to be refused afterwards. Here the inflate streams, and the first bytes are scanned on the way
 * ({@link scanPrefix}): a message whose prefix is already over a limit, or whose length prefix is beyond
 * the size limit, stops after its first chunk. Corrupt compressed data becomes INVALID_ARGUMENT (grpc-js
 * answers INTERNAL). Rejections travel to the guarded deserializer as markers, so the service answers,
 * counts and logs them like any other message refused on the wire.
 *
 * This replaces one method of grpc-js's internal server call class. {@link installGuardedInflate}
 * checks that the method is there and says whether it could; without it, the memory budget's
 * reservations still bound what grpc-js inflates, only not as cheaply.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { RejectedMessage, isGuardedPath, rejectionMarker, scanPrefix } from './wire-guard';

/** Inflate output chunks: few enough callbacks for a 50 MiB message, small enough that the first scan comes early. */
const CHUNK_BYTES = 64 * 1024;
/** Prefix scans run at 64 KiB, 256 KiB, 1 MiB and 4 MiB decompressed; past that the full scan after decompression decides. */
const LAST_PREFIX_SCAN_BYTES = 4 * 1024 * 1024;

type Decompress = (this: BaseCall, message: Buffer, encoding: string) => Buffer | Promise<Buffer>;

/** What this module reads of grpc-js's BaseServerInterceptingCall. */
interface BaseCall {
  readonly handler?: { path?: string };
  readonly maxReceiveMessageSize: number;
}

let installed = false;

/** Replaces grpc-js's server-side decompression (once per process); false when grpc-js's internals do not match. */
export function installGuardedInflate(): boolean {
  if (installed) return true;
  let proto: { decompressMessage?: Decompress } | undefined;
  try {
    const internals = createRequire(require.resolve('@grpc/grpc-js'))('./server-interceptors') as {
      BaseServerInterceptingCall?: { prototype: { decompressMessage?: Decompress } };
    };
    proto = internals.BaseServerInterceptingCall?.prototype;
  } catch {
    return false;
  }
  const original = proto?.decompressMessage;
  if (!proto || typeof original !== 'function' || original.length !== 2) return false;
  proto.decompressMessage = function (this: BaseCall, message: Buffer, encoding: string) {
    const path = this.handler?.path;
    if ((encoding !== 'gzip' && encoding !== 'deflate') || path === undefined || !isGuardedPath(path))
      return original.call(this, message, encoding);
    return inflateGuarded(message.subarray(5), encoding, path, this.maxReceiveMessageSize);
  };
  installed = true;
  return true;
}

/** Inflates `body`, stopping at the size limit or as soon as a prefix scan rejects the message. */
export function inflateGuarded(body: Buffer, encoding: 'gzip' | 'deflate', path: string, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const inflater = encoding === 'gzip' ? zlib.createGunzip({ chunkSize: CHUNK_BYTES }) : zlib.createInflate({ chunkSize: CHUNK_BYTES });
    let parts: Buffer[] = [];
    let total = 0;
    let nextScanAt = CHUNK_BYTES;
    let done = false;
    const finish = (out: Buffer) => {
      if (done) return;
      done = true;
      parts = [];
      inflater.destroy();
      resolve(out);
    };
    const reject = (rejection: RejectedMessage) => finish(rejectionMarker(rejection));
    inflater.on('data', (chunk: Buffer) => {
      if (done) return;
      parts.push(chunk);
      total += chunk.length;
      if (maxBytes >= 0 && total > maxBytes)
        return reject(
          new RejectedMessage(
            'request',
            'size',
            `the request decompresses to more than ${maxBytes} bytes (the server's message size limit)`,
          ),
        );
      if (total >= nextScanAt && total <= LAST_PREFIX_SCAN_BYTES) {
        nextScanAt = total * 4;
        const prefix = Buffer.concat(parts, total);
        parts = [prefix];
        const rejection = scanPrefix(path, prefix, maxBytes);
        if (rejection) reject(rejection);
      }
    });
    inflater.on('error', () => reject(new RejectedMessage('request', 'malformed', `the request message is not valid ${encoding} data`)));
    inflater.on('end', () => finish(parts.length === 1 ? parts[0] : Buffer.concat(parts, total)));
    inflater.end(body);
  });
}
