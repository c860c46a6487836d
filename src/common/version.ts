/** The server package's own version, read from its package.json (the one place it is written). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const PACKAGE_NAME = 'florence2-server';

/**
 * Walks up from this file (src/common under tsx, dist/src/common after tsc, or the installed
 * package) to the package.json named florence2-server. Matching the name matters: the workspace
 * and node_modules hold florence2-client's package.json, whose version is not the server's.
 */
export function serverPackageVersion(): string {
  let dir = __dirname;
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package.json above ${__dirname}`);
    dir = parent;
  }
}
