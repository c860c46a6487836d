/**
 * The container images, checked without a container engine (none runs here): the Dockerfiles are
 * parsed, and what they copy, whom they run as and what they start are compared with the repository.
 * What this cannot show — that the images build and start — is said in deploy/README.md.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { SETTINGS } from '../../src/config/schema';

const ROOT = resolve(__dirname, '../..');

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  base: string;
  name: string | undefined;
  workdir: string;
  instructions: Instruction[];
}

/** Instructions of a Dockerfile: comments dropped, backslash continuations joined. */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued RUN
    if (line.endsWith('\\')) pending += `${line.slice(0, -1)} `;
    else {
      logical.push(pending + line);
      pending = '';
    }
  }
  assert.equal(pending, '', 'the Dockerfile ends inside a continued line');
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s+(.*)$/.exec(l);
    assert.ok(m, `cannot parse Dockerfile line ${JSON.stringify(l)}`);
    const keyword = m[1].toUpperCase();
    const args = m[2];
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(f, `cannot parse FROM ${args}`);
      stages.push({ base: f[1], name: f[2], workdir: '/', instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage, `${keyword} before the first FROM`);
    if (keyword === 'WORKDIR') stage.workdir = posix.resolve(stage.workdir, args);
    stage.instructions.push({ keyword, args });
  }
  return stages;
}

/** A JSON-array (exec form) argument, as Docker reads it. */
function execForm(args: string): string[] {
  const v: unknown = JSON.parse(args);
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `not an exec-form array: ${args}`);
  return v;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
    });
}

/** Environment set by ENV in a stage (the `K=V K2=V2` form). */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of stage.instructions.filter((x) => x.keyword === 'ENV'))
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env.set(m[1], m[2].replace(/^"(.*)"$/, '$1'));
  return env;
}

/** The .dockerignore patterns the test relies on: `x` (at the root) and `**\/x` (at any depth). */
function ignored(patterns: string[], path: string): boolean {
  const segments = path.split('/');
  return patterns.some((p) => {
    if (p.startsWith('**/')) return segments.includes(p.slice(3));
    return path === p || path.startsWith(`${p}/`);
  });
}

const dockerignore = readFileSync(resolve(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

const IMAGES = [
  { file: 'deploy/docker/Dockerfile', ortInstall: 'skip' },
  { file: 'deploy/docker/Dockerfile.gpu', ortInstall: 'cuda12' },
];

describe('container images (deploy/docker)', function () {
  this.timeout(60_000);

  it('.dockerignore keeps node_modules, build outputs, caches and test fixtures out of the context', () => {
    for (const p of [
      'node_modules',
      'packages/client/node_modules',
      'dist',
      'packages/client/dist',
      '.cache',
      'test',
      'test/fixtures',
      '.git',
    ])
      assert.ok(ignored(dockerignore, p), `.dockerignore lets ${p} in`);
    for (const p of ['src', 'proto', 'bin', 'package.json', 'package-lock.json', 'packages/client/src'])
      assert.ok(!ignored(dockerignore, p), `.dockerignore keeps out ${p}, which the build needs`);
  });

  for (const image of IMAGES) {
    describe(image.file, () => {
      const stages = parseDockerfile(readFileSync(resolve(ROOT, image.file), 'utf8'));
      const final = stages[stages.length - 1];
      const build = stages.find((s) => s.name === 'build');

      it('has a build stage that installs with npm ci, builds, prunes dev dependencies, and sets ONNXRUNTIME_NODE_INSTALL', () => {
        assert.ok(build, 'no stage named build');
        assert.equal(envOf(build).get('ONNXRUNTIME_NODE_INSTALL'), image.ortInstall);
        const run = build.instructions
          .filter((i) => i.keyword === 'RUN')
          .map((i) => i.args)
          .join(' && ');
        const order = ['npm ci', 'npm run -s build', 'npm prune --omit=dev'].map((c) => run.indexOf(c));
        assert.ok(
          order.every((i) => i >= 0),
          `the build stage must run npm ci, npm run build and npm prune --omit=dev: ${run}`,
        );
        assert.deepEqual(
          [...order].sort((a, b) => a - b),
          order,
          'npm ci, build and prune must run in that order',
        );
        assert.match(build.base, /^node:20[.-]/, 'build on Node 20');
      });

      it('copies into the build stage only paths that exist in the repository and reach the build context', () => {
        for (const c of copies(build!)) {
          assert.equal(c.from, undefined);
          for (const s of c.sources) {
            assert.ok(existsSync(resolve(ROOT, s)), `${image.file} copies ${s}, which is not in the repository`);
            assert.ok(!ignored(dockerignore, s), `${image.file} copies ${s}, which .dockerignore leaves out`);
          }
        }
      });

      it('copies from the build stage what the build makes, including everything package.json ships', () => {
        const fromBuild = copies(final).filter((c) => c.from === 'build');
        assert.ok(fromBuild.length > 0, 'the final stage copies nothing from the build stage');
        const copied: string[] = [];
        for (const c of fromBuild)
          for (const s of c.sources) {
            // In the build stage WORKDIR is /app, which is the repository root here; npm ci (its
            // prepare script) has built dist/ in this checkout as it does in the image.
            assert.ok(s.startsWith(`${build!.workdir}/`), `${s} is not under the build stage's ${build!.workdir}`);
            const rel = s.slice(build!.workdir.length + 1);
            assert.ok(existsSync(resolve(ROOT, rel)), `${image.file} copies ${s}, which the build does not make (${rel} missing here)`);
            copied.push(rel);
          }
        const files = (JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
        for (const f of files.filter((x) => !x.startsWith('!') && !/\.md$|^LICENSE$/.test(x))) {
          const want = f.replace(/\/$/, '');
          assert.ok(
            copied.some((c) => want === c || want.startsWith(`${c}/`)),
            `package.json ships ${f} but the image does not copy it`,
          );
        }
        for (const needed of ['node_modules', 'package.json', 'packages/client'])
          assert.ok(copied.includes(needed), `the image must copy ${needed}`);
      });

      it('runs as a numeric non-root user, with the fonts visuals need and writable paths only on volumes', () => {
        const user = final.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
        assert.ok(user, 'no USER: the image would run as root');
        const [uid] = user.split(':');
        assert.match(uid, /^\d+$/, 'a numeric uid, so that runAsNonRoot can check it');
        assert.notEqual(Number(uid), 0, 'USER is root');
        const run = final.instructions
          .filter((i) => i.keyword === 'RUN')
          .map((i) => i.args)
          .join(' ');
        assert.match(run, /apt-get install [^&]*fonts-dejavu-core/);
        const env = envOf(final);
        const volumes = final.instructions.filter((i) => i.keyword === 'VOLUME').flatMap((i) => execForm(i.args));
        for (const key of ['HF_HUB_CACHE', 'TMPDIR']) {
          const dir = env.get(key);
          assert.ok(dir, `${key} is not set`);
          assert.ok(
            volumes.some((v) => dir === v || dir.startsWith(`${v}/`)),
            `${key}=${dir} is not on a VOLUME (${volumes.join(', ')}): a read-only root filesystem could not write it`,
          );
        }
      });

      it('sets only real FLORENCE2_* settings, with values their parsers accept', () => {
        for (const [k, v] of envOf(final)) {
          if (!k.startsWith('FLORENCE2_')) continue;
          const setting = SETTINGS.find((s) => s.env === k);
          assert.ok(setting, `${k} is not a florence2 setting`);
          const parsed = setting.parse(v, { baseDir: '/app' });
          assert.ok(parsed.ok, `${k}=${v}: ${parsed.ok ? '' : parsed.error}`);
        }
      });

      it('starts `node bin/florence2.js serve`, and that command runs from the repository', () => {
        const entry = execForm(final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)!.args);
        const cmd = execForm(final.instructions.filter((i) => i.keyword === 'CMD').at(-1)!.args);
        assert.equal(entry[0], 'node');
        assert.deepEqual(cmd, ['serve']);
        // The image's /app is this repository root with the build done.
        const script = posix.resolve(final.workdir, entry[1]);
        assert.ok(script.startsWith('/app/'), `entrypoint ${script} is outside /app`);
        const entryArgs = [resolve(ROOT, script.slice('/app/'.length)), ...entry.slice(2)];
        const run = (extra: string[]) =>
          spawnSync(process.execPath, [...entryArgs, ...extra], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
        const version = run(['--version']);
        assert.equal(version.status, 0, `${entry.join(' ')} --version exited ${version.status}: ${version.stderr}`);
        const help = run([...cmd, '--help']);
        assert.equal(help.status, 0, `${[...entry, ...cmd].join(' ')} --help exited ${help.status}: ${help.stderr}`);
        assert.match(help.stdout, /^Usage: florence2 serve/);
      });
    });
  }
});
