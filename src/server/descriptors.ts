/**
 * The descriptors server reflection serves: protoc's, from FileDescriptorSets that buf builds at
 * `npm run gen` into src/generated (committed; serving never needs buf).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';

/** src/generated, found upwards from this file (src/server under tsx, dist/src/server after tsc). */
function generatedDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = join(dir, 'src', 'generated');
    if (existsSync(join(candidate, 'florence2.binpb'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find src/generated/florence2.binpb above ${__dirname}`);
    dir = parent;
  }
}

/**
 * The FileDescriptorProtos of proto/ (`florence2`) or of grpc-health-check's health.proto (`health`),
 * as protoc writes them, built by buf into committed FileDescriptorSets (npm run gen). protobufjs's own descriptors name map entries wrongly (`Files`,
 * not `FilesEntry`), which Go and Python descriptor pools refuse; these are what reflection serves.
 * Read from the committed file, so serving never needs buf.
 */
export function generatedFileDescriptorProtos(set: 'florence2' | 'health'): Buffer[] {
  const bytes = readFileSync(join(generatedDir(), `${set}.binpb`));
  // FileDescriptorSet is `repeated FileDescriptorProto file = 1`: length-delimited field 1, nothing else.
  const reader = new protobuf.Reader(bytes);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === ((1 << 3) | 2)) files.push(Buffer.from(reader.bytes()));
    else reader.skipType(tag & 7);
  }
  return files;
}
