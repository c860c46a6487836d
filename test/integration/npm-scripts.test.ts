/**
 * `npm run demo` and `npm start` stop with the npm process: SIGTERM to npm (what a supervisor or
 * `kill` sends) reaches the server, which drains and exits, and npm exits with it; Ctrl-C (SIGINT to
 * the terminal's process group) likewise. Nothing is left running or listening.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { carTiny } from '../helpers/synth-models';
import { waitFor } from '../helpers/wait';

const ROOT = resolve(__dirname, '../..');
const LOOPBACK = ['--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--metrics-host', '127.0.0.1'];

/** Every process below `pid` (Linux /proc), so a server that outlives npm is still found. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the fields after it are fixed.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

/** Whether `pid` still runs (a zombie counts as gone: it has exited and holds nothing). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** GET `path` on the metrics port: its status, or the connection error's code. */
function probe(port: number, path: '/livez' | '/readyz'): Promise<number | string> {
  return new Promise((res) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => res(err.code ?? err.message));
    req.end();
  });
}

/** The JSON log lines in `text` (other lines, such as npm's banner, are skipped). */
function logLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v === 'object' && v !== null) out.push(v as Record<string, unknown>);
    } catch {
      // not a log line
    }
  }
  return out;
}

interface Started {
  npm: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  metricsPort: number;
  output: () => string;
}

/** `npm <args>` in its own process group (so a leftover can be cleaned up), until its server serves. */
async function startNpm(args: string[]): Promise<Started> {
  const npm = spawn('npm', args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let text = '';
  npm.stdout.on('data', (c: Buffer) => (text += c.toString()));
  npm.stderr.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    npm.once('exit', (code, signal) => res({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const metricsPort = await waitFor(
    () => {
      if (gone) throw new Error(`npm ${args.join(' ')} exited before listening:\n${text.slice(-3000)}`);
      const port = logLines(text).find((l) => l.msg === 'listening')?.metricsPort;
      return typeof port === 'number' ? port : 0;
    },
    { what: `npm ${args[0]} ${args[1] ?? ''} to listen`, timeoutMs: 120_000, intervalMs: 50 },
  );
  await waitFor(async () => (await probe(metricsPort, '/readyz')) === 200, {
    what: 'the server to serve (/readyz 200)',
    timeoutMs: 60_000,
  });
  return { npm, exited, metricsPort, output: () => text };
}

describe('npm scripts forward signals to the server', function () {
  this.timeout(300_000);
  const started: Started[] = [];
  afterEach(() => {
    // A server that outlived npm (the defect) is still in npm's process group: stop it.
    for (const s of started.splice(0)) {
      try {
        process.kill(-s.npm.pid!, 'SIGKILL');
      } catch {
        // nothing left
      }
    }
  });

  const cases: Array<[string, () => Promise<string[]>]> = [
    ['npm run demo', async () => ['run', 'demo', '--', ...LOOPBACK]],
    ['npm start', async () => ['start', '--', '--model', await carTiny(), ...LOOPBACK]],
  ];
  for (const [name, args] of cases) {
    it(`${name}: SIGTERM to the npm process stops the server, which drains and exits 0`, async () => {
      const s = await startNpm(await args());
      started.push(s);
      const below = descendants(s.npm.pid!);
      assert.ok(below.length > 0, 'the server runs below npm');
      s.npm.kill('SIGTERM');
      const { code } = await s.exited;
      await waitFor(() => below.every((pid) => !running(pid)), { what: `every process npm started to exit (${below.join(', ')})` });
      assert.equal(await probe(s.metricsPort, '/livez'), 'ECONNREFUSED', 'the port is closed');
      assert.equal(code, 0, `npm exits with the server's code (a clean drain):\n${s.output().slice(-2000)}`);
      assert.ok(
        logLines(s.output()).some((l) => l.msg === 'stopped' && l.forced === false),
        'the server logged its drained stop',
      );
    });
  }

  it('npm run demo: Ctrl-C (SIGINT to the process group) drains the server; npm forwarding it too counts once', async () => {
    const s = await startNpm(['run', 'demo', '--', ...LOOPBACK]);
    started.push(s);
    const below = descendants(s.npm.pid!);
    process.kill(-s.npm.pid!, 'SIGINT');
    const { code } = await s.exited;
    await waitFor(() => below.every((pid) => !running(pid)), { what: 'every process npm started to exit' });
    assert.equal(await probe(s.metricsPort, '/livez'), 'ECONNREFUSED');
    assert.equal(code, 0);
    // The terminal's SIGINT and npm's forwarded copy are one Ctrl-C: a second press must not force the stop.
    const lines = logLines(s.output());
    assert.deepEqual(
      lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('signal received again')),
      [],
      'one Ctrl-C counts once',
    );
    assert.ok(lines.some((l) => l.msg === 'stopped' && l.forced === false));
  });
});
