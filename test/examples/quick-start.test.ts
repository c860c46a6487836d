/**
 * The README's quick start runs as written (issue 13): each `$ ` command of its console transcript,
 * read from README.md, runs from the repository root against a server on the demo's scripted `car`
 * model, and prints what the transcript shows. Only the address differs: the test's server listens
 * on a free port, not the demo's 50051.
 */
import { strict as assert } from 'node:assert';
import { runBash } from '../helpers/run-bash';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ServerProcess, startServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';

const ROOT = resolve(__dirname, '../..');
const DEMO_ADDRESS = 'localhost:50051';

interface Step {
  command: string;
  /** The transcript's lines after the command, up to the next one. */
  shown: string[];
}

/** The commands of the quick start's console block, each with the output the README shows. */
function quickStart(): Step[] {
  const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Quick start\n');
  assert.ok(start >= 0, 'README.md has a Quick start');
  const block = /```console\n([\s\S]*?)```/.exec(readme.slice(start, readme.indexOf('\n## ', start + 1)));
  assert.ok(block, 'the quick start has a console transcript');
  const steps: Step[] = [];
  for (const line of block[1].trimEnd().split('\n')) {
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), shown: [] });
    else steps.at(-1)?.shown.push(line);
  }
  return steps;
}

const run = (command: string) => runBash(command, ROOT);

describe("README quick start: the transcript's commands print what it shows", function () {
  this.timeout(120_000);
  const steps = quickStart();
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(['--model', await carTiny()]);
    await server.serving;
  });
  after(async () => {
    await server?.stop();
  });

  /** The README's command against the test's server. */
  const asWritten = (step: Step) => {
    assert.ok(step.command.includes(DEMO_ADDRESS), `${step.command} calls the demo server`);
    return run(step.command.replace(DEMO_ADDRESS, server.address));
  };

  it('the transcript has the readable and the --json predict', () => {
    assert.deepEqual(
      steps.map((s) => s.command.includes('--json')),
      [false, true],
      steps.map((s) => s.command).join('\n'),
    );
  });

  it('predict on examples/images/: the results on stdout line for line, the progress on stderr', async () => {
    const step = steps.find((s) => !s.command.includes('--json'))!;
    const r = await asWritten(step);
    assert.equal(r.code, 0, r.stderr);
    // Progress lines go to stderr, in the order images finish; the results to stdout, in name order.
    const progress = /^\[\d+\/\d+\] /;
    assert.deepEqual(
      r.stdout.trimEnd().split('\n'),
      step.shown.filter((l) => !progress.test(l)),
    );
    // The counter is the order of completion, so images are compared without it.
    const images = (lines: string[]) =>
      lines
        .filter((l) => progress.test(l))
        .map((l) => l.replace(progress, ''))
        .sort();
    assert.deepEqual(images(r.stderr.trimEnd().split('\n')), images(step.shown));
  });

  it('predict --json: the result and the request facts the transcript shows', async () => {
    const step = steps.find((s) => s.command.includes('--json'))!;
    const r = await asWritten(step);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const shown = step.shown.join('\n');
    // The transcript elides per-run values ("..."); its result line is whole JSON.
    const result = /"result": (\{.*\}),?$/m.exec(shown);
    assert.ok(result, shown);
    assert.deepEqual(out.results[0].result, JSON.parse(result[1]));
    assert.equal(out.results[0].image, /"image": "([^"]+)"/.exec(shown)?.[1]);
    assert.equal(out.results[0].task, /"task": "([^"]+)"/.exec(shown)?.[1]);
    for (const key of ['promptTokens', 'generatedTokens', 'imageWidth', 'imageHeight', 'device']) {
      const value = new RegExp(`"${key}": ("[^"]*"|\\d+)`).exec(shown)?.[1];
      assert.ok(value, `the transcript shows ${key}`);
      assert.equal(out.results[0].meta[key], JSON.parse(value), key);
    }
    assert.deepEqual(out.failures, []);
  });
});
