/**
 * florence2-client as a user gets it: `npm pack` the workspace, install the tarball into a fresh app
 * outside the repository (no .npmrc) with the repository's TypeScript, compile the README's client
 * program under strict, check what the install pulls in, and run the program against a server.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';

const ROOT = resolve(__dirname, '../..');
const IMAGES = resolve(ROOT, 'examples/images');

function sh(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): { status: number | null; output: string; stdout: string } {
  const r = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stdout: r.stdout ?? '', output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** The README's "From TypeScript" section: its program (first ts block) and the tsc command after it. */
function readmeClient(): { program: string; tsc: string } {
  const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
  const section = readme.indexOf('\n### From TypeScript\n');
  assert.ok(section >= 0, 'README.md has a "From TypeScript" section');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(section));
  assert.ok(block, 'the section has a ts block');
  const tsc = /^npx tsc [^&\n]*detect\.ts/m.exec(readme.slice(section + block.index + block[0].length));
  assert.ok(tsc, 'the section compiles detect.ts with npx tsc');
  return { program: block[1], tsc: tsc[0] };
}

/** Every package folder under node_modules (scoped and nested ones included). */
function packageNames(nodeModules: string, out: string[] = []): string[] {
  for (const entry of readdirSync(nodeModules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(nodeModules, entry.name);
    const names = entry.name.startsWith('@') ? readdirSync(dir).map((n) => `${entry.name}/${n}`) : [entry.name];
    for (const name of names) {
      out.push(name);
      const nested = join(nodeModules, name, 'node_modules');
      if (statSync(join(nodeModules, name)).isDirectory() && readdirSync(join(nodeModules, name)).includes('node_modules'))
        packageNames(nested, out);
    }
  }
  return out;
}

function bytesUnder(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + bytesUnder(join(path, name)), 0);
}

describe('florence2-client packed and installed into a fresh app', function () {
  this.timeout(300_000);
  let work: string;
  let app: string;
  let server: ServerProcess;
  let noNpmrc: NodeJS.ProcessEnv;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'florence2-client-pack-'));
    // The repository's npm settings must not reach the app (its .npmrc is the point of the test).
    noNpmrc = { npm_config_userconfig: join(work, 'no-npmrc'), npm_config_globalconfig: join(work, 'no-global-npmrc') };
    app = join(work, 'app');
    const serverStarting = carTiny().then((model) => startServerProcess(['--model', model, '--devices', 'cpu']));
    // prepack builds the package and copies proto/ and LICENSE into it.
    const pack = sh('npm', ['pack', '-w', 'florence2-client', '--pack-destination', work, '--json'], ROOT);
    assert.equal(pack.status, 0, pack.output);
    const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string }[];
    const typescript = (JSON.parse(readFileSync(resolve(ROOT, 'node_modules/typescript/package.json'), 'utf8')) as { version: string })
      .version;
    const types = (JSON.parse(readFileSync(resolve(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }));
    const install = sh(
      'npm',
      ['install', join(work, filename), `typescript@${typescript}`, `@types/node@${types}`, '--prefer-offline', '--no-audit', '--no-fund'],
      app,
      noNpmrc,
    );
    assert.equal(install.status, 0, install.output);
    server = await serverStarting;
    await server.serving;
  });

  after(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds no onnxruntime or sharp, and the client with its dependencies is under 30 MB', () => {
    const names = packageNames(join(app, 'node_modules'));
    assert.ok(names.includes('florence2-client') && names.includes('@grpc/grpc-js'), names.join(' '));
    assert.deepEqual(
      names.filter((n) => /^(onnxruntime-node|onnxruntime-common|sharp|@img\/.*)$/.test(n)),
      [],
    );
    // TypeScript is the test's, not the client's.
    const bytes = bytesUnder(join(app, 'node_modules')) - bytesUnder(join(app, 'node_modules/typescript'));
    assert.ok(bytes < 30 * 1024 * 1024, `${(bytes / 2 ** 20).toFixed(1)} MiB`);
  });

  it("strict tsc compiles the README's program with the README's command, and the program calls the server", () => {
    const { program, tsc } = readmeClient();
    assert.match(tsc, /--strict\b/);
    writeFileSync(join(app, 'detect.ts'), program);
    const compiled = sh('bash', ['-c', tsc], app, noNpmrc);
    assert.equal(compiled.status, 0, `${tsc}\n${compiled.output}`);
    const street = join(IMAGES, 'street.jpg');
    const parking = join(IMAGES, 'parking.png');
    const run = sh(process.execPath, ['detect.js', street, parking], app, { FLORENCE2_SERVER: server.address });
    assert.equal(run.status, 0, run.output);
    const lines = run.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(0, 2), [`${street} (640x480):`, '  car (34.2, 160.1)-(597.4, 371.8) score 1.00'], run.output);
    // Stream outcomes come in the order the server answers them.
    assert.deepEqual(lines.slice(2).sort(), [`${parking}: 1 boxes`, `${street}: 1 boxes`], run.output);
  });
});
