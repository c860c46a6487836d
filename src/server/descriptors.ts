/**
 * The descriptors server reflection serves: protoc's, from FileDescriptorSets that buf builds at
 * `npm run gen` into src/generated (committed; serving never needs buf).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';
import { type FileRegistry, createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

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

/** A @bufbuild/protobuf registry over the same descriptors: the HTTP/JSON front end's proto3 JSON mapping. */
export function generatedRegistry(set: 'florence2' | 'health'): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(generatedDir(), `${set}.binpb`))));
}

/** Another file `npm run gen` writes into src/generated (the OpenAPI document). */
export function readGeneratedFile(name: 'openapi.json'): Buffer {
  return readFileSync(join(generatedDir(), name));
}
