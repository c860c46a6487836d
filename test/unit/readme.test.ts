/**
 * The README states only what is true (issue 14): its settings table under "Running it" names real
 * `serve` flags with the defaults `serve --help` gives (it once called `--model` required while
 * serve defaulted to base-ft from the Hub), and the quick start gives the test suite no running
 * time (a figure that went stale: "about 3 minutes" for a suite that ran in 1 min 44 s).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SETTINGS, type AnySetting } from '../../src/config/schema';

const README = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');

/** The section under a `## ` or `### ` heading, up to the next heading of any level. */
function section(heading: string): string {
  const start = README.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README.md has "${heading}"`);
  const rest = README.slice(start + heading.length + 2);
  const end = rest.search(/^#{1,6} /m);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The cells of a markdown table row (`\|` inside a cell is not a separator). */
const cells = (row: string) =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

/** Whether the README's default for one flag says what the setting's default is. */
function agrees(readme: string, s: AnySetting): boolean {
  const d = readme.replace(/`/g, '').trim();
  const text = s.defaultText;
  let m: RegExpExecArray | null;
  if (d === 'off') return s.default === false || s.default === -1;
  if (d === 'on') return s.default === true;
  if (/^\d+$/.test(d)) return s.default === Number(d);
  if ((m = /^(\d+) MP$/.exec(d))) return s.default === Number(m[1]) * 1e6;
  if ((m = /^(\d+) MiB$/.exec(d))) return s.default === Number(m[1]) * 2 ** 20;
  if ((m = /^auto: (\d+) CPU, (\d+) GPU$/.exec(d))) return text.includes(`auto: ${m[1]} on CPU, ${m[2]} on a GPU`);
  if (d === 'auto') return /\bauto\b/.test(text);
  if (d === 'workers') return /workers per device/.test(text);
  // A name (base-ft, cpu, info): what help shows first.
  return text.split(' ')[0] === d;
}

describe('README.md tells the truth', () => {
  it("the settings table names serve's flags with serve's defaults", () => {
    const rows = section('## Running it')
      .split('\n')
      .filter((l) => l.startsWith('| `--'));
    assert.ok(rows.length >= 15, `the settings table has its rows (${rows.length})`);
    const byFlag = new Map(SETTINGS.map((s) => [s.flag, s]));
    const checked: string[] = [];
    for (const row of rows) {
      const [setting, defaults] = cells(row);
      const flags = [...setting.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]);
      // Two flags share a row as "a, b"; one default may itself hold a comma ("auto: 16 CPU, 64 GPU").
      const values = flags.length === 1 ? [defaults] : defaults.split(/,\s*/);
      assert.equal(values.length, flags.length, `${row}: one default per flag`);
      flags.forEach((flag, i) => {
        const s = byFlag.get(flag);
        assert.ok(s && !s.hidden, `${flag} is a serve setting`);
        assert.ok(agrees(values[i], s), `${flag}: README says ${values[i]}, serve --help says ${s.defaultText}`);
        checked.push(flag);
      });
    }
    // The setting the README once called required.
    assert.ok(checked.includes('--model'));
  });

  it('the quick start gives the test suite no running time', () => {
    const line = section('## Quick start')
      .split('\n')
      .find((l) => l.includes('npm test'));
    assert.ok(line, 'the quick start has the test command');
    assert.doesNotMatch(line, /\d[\d.,½¼¾]*\s*(s|sec|seconds?|min|minutes?)\b/);
  });
});
