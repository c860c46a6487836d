/** Loads the service definition (shared by the server and the client) from proto/ with the same options the type generator uses (npm run gen). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

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
