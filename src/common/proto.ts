/** Loads the service definition (shared by the server and the client) from proto/ with the same options the type generator uses (npm run gen). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';

/** Must equal the generator flags in package.json "gen": a mismatch silently makes the generated types wrong. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export const PROTO_FILE = 'florence2/v1/florence2.proto';

/** The proto/ folder, found upwards from this file (works from src/ under tsx and from dist/ after tsc). */
export function protoDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, PROTO_FILE))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find proto/${PROTO_FILE} above ${__dirname}`);
    dir = parent;
  }
}

export function loadFlorence2Package(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILE, { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
}

/**
 * The FileDescriptorProtos of proto/ (`florence2`) or of grpc-health-check's health.proto (`health`),
 * as protoc writes them, built by buf into committed FileDescriptorSets (npm run gen). protobufjs's own descriptors name map entries wrongly (`Files`,
 * not `FilesEntry`), which Go and Python descriptor pools refuse; these are what reflection serves.
 * Read from the committed file, so serving never needs buf.
 */
export function generatedFileDescriptorProtos(set: 'florence2' | 'health'): Buffer[] {
  const bytes = readFileSync(join(protoDir(), '..', 'src', 'generated', `${set}.binpb`));
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
