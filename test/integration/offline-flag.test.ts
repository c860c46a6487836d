/**
 * `--offline`, which the offline message names, exists on every command that resolves a Hub model
 * (`serve`, `annotate`; `models pull` is tested with the Hub) and turns on the offline mode that
 * FLORENCE2_OFFLINE / HF_HUB_OFFLINE turn on: an uncached model fails at once, without the network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { serve } from '../../src/cli/serve';
import { annotate } from '../../src/cli/annotate';
import { helpText } from '../../src/config/load';
import { writeImage } from '../annotate/helpers';
import { captureOutput } from '../helpers/capture-output';

describe('--offline on the commands that resolve models', () => {
  let tmp: string;
  let hub: Server;
  let connections = 0;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'offline-flag-'));
    // A Hub that counts connections: offline mode must make none.
    hub = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((res) => hub.listen(0, '127.0.0.1', res));
    const { port } = hub.address() as { port: number };
    env = { FLORENCE2_HOME: join(tmp, 'home'), HF_ENDPOINT: `http://127.0.0.1:${port}` };
  });
  after(async () => {
    await new Promise((res) => hub.close(res));
    rmSync(tmp, { recursive: true, force: true });
  });
  beforeEach(() => (connections = 0));

  it('serve --offline: an uncached Hub model exits 3 with the offline message, without a connection', async () => {
    const r = await captureOutput(() => serve(['--offline', '--model', 'base-ft', '--metrics-port', '-1'], env));
    assert.doesNotMatch(r.stderr, /unknown flag/);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /offline mode is on \(--offline, FLORENCE2_OFFLINE or HF_HUB_OFFLINE\)/);
    assert.match(r.stderr, /florence2 models pull base-ft/);
    assert.equal(connections, 0);
  });

  it('serve: FLORENCE2_OFFLINE takes the values the Hub code reads (yes/on as well as 1/true)', async () => {
    for (const value of ['1', 'true', 'yes', 'on']) {
      const r = await captureOutput(() => serve(['--metrics-port', '-1'], { ...env, FLORENCE2_OFFLINE: value }));
      assert.equal(r.code, 3, `${value}: ${r.stderr}`);
      assert.match(r.stderr, /offline mode is on/);
    }
    assert.equal(connections, 0);
  });

  it('serve --help lists --offline with its variable', () => {
    const help = helpText();
    assert.match(help, /^ {2}--offline, --no-offline$/m);
    assert.match(help, /env FLORENCE2_OFFLINE/);
  });

  it('annotate --offline: no model without the network, reported with what to do', async () => {
    const data = join(tmp, 'data');
    await writeImage(join(data, 'a.png'), 32, 24);
    const r = await captureOutput(() => annotate([data, '-o', join(tmp, 'out'), '--offline'], env));
    assert.doesNotMatch(r.stderr, /unknown option/);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no model: .*offline mode is on/s);
    assert.equal(connections, 0);
    assert.match((await captureOutput(() => annotate(['--help'], env))).stdout, /--offline/);
  });
});
