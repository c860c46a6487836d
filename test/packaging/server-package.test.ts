/**
 * The server package as it would be published: `florence2 --version` prints package.json's version,
 * and `npm pack` (dry run, without the build scripts) holds what `florence2 serve` needs from an
 * install and nothing of the repository's tests, tools or fixtures.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const CLI = resolve(ROOT, 'src/cli/main.ts');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;

function florence2(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('server package', function () {
  it('florence2 --version and -V print the version in package.json; --help lists them', () => {
    assert.match(String(pkg.version), /^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      const r = florence2([flag]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${String(pkg.version)}\n`);
    }
    const help = florence2(['--help']);
    assert.match(help.stdout, /-V, --version/);
  });

  it('has the metadata a published package needs', () => {
    assert.equal(pkg.private, undefined, 'not private');
    assert.equal(pkg.license, 'MIT');
    assert.deepEqual(pkg.repository, { type: 'git', url: 'git+https://github.com/florence2-server/florence2-server.git' });
    assert.ok(Array.isArray(pkg.keywords) && pkg.keywords.includes('florence-2'));
    assert.ok(pkg.engines && typeof pkg.engines === 'object' && 'node' in pkg.engines);
    const client = JSON.parse(readFileSync(resolve(ROOT, 'packages/client/package.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(client.repository, { ...(pkg.repository as object), directory: 'packages/client' }, 'one repository URL for both');
    assert.equal(
      (pkg.dependencies as Record<string, string>)['florence2-client'],
      client.version,
      'the server pins the client it ships with',
    );
  });

  it('npm pack holds the compiled CLI and server, proto, reflection descriptors and docs, and no tests or fixtures', function () {
    // The compiled files are listed only once they are built (npm ci builds them through prepare).
    if (!existsSync(resolve(ROOT, 'dist/src/cli/main.js'))) throw new Error('dist/ is not built: run npm run build');
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const [packed] = JSON.parse(r.stdout) as { files: { path: string }[]; unpackedSize: number }[];
    const files = packed.files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'bin/florence2.js',
      'dist/src/cli/main.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/annotate/index.js',
      'dist/src/worker/florence.worker.js',
      'dist/src/common/version.js',
      'proto/florence2/v1/florence2.proto',
      'src/generated/florence2.binpb',
      'src/generated/health.binpb',
      // served at /openapi.json by the HTTP/JSON API
      'src/generated/openapi.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
    ]) {
      assert.ok(files.includes(needed), `${needed} is packed`);
    }
    const stray = files.filter(
      (f) =>
        /^(test|tools|bench|clients|packages|deploy|docs|examples|vendor|\.cache|\.ci|node_modules)\//.test(f) ||
        (/\.(map|ts)$/.test(f) && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(stray, []);
    assert.ok(packed.unpackedSize < 5 << 20, `unpacked ${packed.unpackedSize} bytes`);
  });
});
