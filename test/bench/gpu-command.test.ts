/**
 * `npm run bench:gpu` on a machine without a GPU: it must say so, naming why each provider cannot
 * run, and exit 0 (CI machines have no GPU; with lavapipe installed they do have a WebGPU adapter,
 * which the command must not take for a GPU).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const hasGpu = () =>
  readdirSync('/dev').some((n) => /^nvidia\d+$/.test(n)) ||
  (existsSync('/dev/dri') && readdirSync('/dev/dri').some((n) => n.startsWith('renderD')));

describe('npm run bench:gpu without a GPU', function () {
  this.timeout(120_000);

  it('says that no GPU is present, why for each provider, and exits 0', function () {
    if (hasGpu()) this.skip();
    const r = spawnSync('npm', ['run', '-s', 'bench:gpu'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'bench:gpu: no GPU here, nothing to measure.');
    assert.match(r.stdout, /^- webgpu: .+/m);
    assert.match(r.stdout, /^- cuda: .+/m);
    assert.doesNotMatch(r.stdout, /tokens\/s/, 'nothing was measured');
  });

  it('refuses an unknown provider with a usage error', () => {
    const r = spawnSync('npm', ['run', '-s', 'bench:gpu', '--', '--providers', 'tpu'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--providers: unknown "tpu" \(webgpu, cuda\)/);
  });
});
