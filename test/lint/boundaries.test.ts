/**
 * The architecture's import boundaries hold because the linter fails on them: plant each violation
 * in a file of the folder it must not appear in, and check that ESLint reports it. Also proves the
 * circular-import check (madge) finds a planted cycle.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ESLint } from 'eslint';
import madge from 'madge';

const ROOT = resolve(__dirname, '../..');

/** The boundary findings (and fatal errors) ESLint reports for `code` placed at `file` (an existing file, so the typed project knows it). */
async function boundaryFindings(eslint: ESLint, file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal).map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

describe('lint: import boundaries', function () {
  // Type-aware linting builds a TypeScript program first: seconds on a loaded 2-core machine.
  this.timeout(180_000);
  let eslint: ESLint;
  before(() => {
    eslint = new ESLint({ cwd: ROOT });
  });

  const planted: Array<{ file: string; code: string; why: string }> = [
    {
      file: 'src/server/service.ts',
      code: "import * as ort from 'onnxruntime-node';\nexport const x = ort;\n",
      why: 'only src/runtime imports onnxruntime-node',
    },
    {
      file: 'src/worker/florence.worker.ts',
      code: "import type { InferenceSession } from 'onnxruntime-node';\nexport type X = InferenceSession;\n",
      why: 'not even a type import outside src/runtime',
    },
    {
      file: 'src/florence/prompts.ts',
      code: "import * as grpc from '@grpc/grpc-js';\nexport const x = grpc;\n",
      why: 'src/florence imports no gRPC',
    },
    {
      file: 'src/florence/pipeline.ts',
      code: "import { Piscina } from 'piscina';\nexport const x = Piscina;\n",
      why: 'src/florence imports no piscina',
    },
    {
      file: 'src/florence/prompts.ts',
      code: "import { Scheduler } from '../server/scheduler';\nexport const x = Scheduler;\n",
      why: 'src/florence depends on nothing above it',
    },
    {
      file: 'src/florence/pipeline.ts',
      code: "import { Florence2Client } from 'florence2-client';\nexport const x = Florence2Client;\n",
      why: 'src/florence takes only the task catalogue from the client package',
    },
    {
      file: 'packages/client/src/client.ts',
      code: "import { Scheduler } from '../../../src/server/scheduler';\nexport const x = Scheduler;\n",
      why: 'the client package imports no server code',
    },
    {
      file: 'packages/client/src/tasks.ts',
      code: "import sharp from 'sharp';\nexport const x = sharp;\n",
      why: 'the client package needs no image library',
    },
    {
      file: 'packages/client/src/types.ts',
      code: "import { readModelConfig } from 'florence2-server/dist/src/florence/model-config';\nexport const x = readModelConfig;\n",
      why: 'the client package does not depend on the server package',
    },
    {
      file: 'src/cli/predict.ts',
      code: "import { withRetries } from '../../packages/client/src/retry';\nexport const x = withRetries;\n",
      why: 'product code imports the client package by its name',
    },
    {
      file: 'src/cli/main.ts',
      code: "import { buildModel } from '../../tools/synth/build';\nexport const x = buildModel;\n",
      why: 'product code does not import dev tooling',
    },
  ];
  for (const p of planted) {
    it(`fails on a planted violation: ${p.why} (${p.file})`, async () => {
      assert.deepEqual(await boundaryFindings(eslint, p.file, p.code), ['no-restricted-imports']);
    });
  }

  it('allows what the layers permit', async () => {
    assert.deepEqual(
      await boundaryFindings(eslint, 'src/runtime/ort-backend.ts', "import * as ort from 'onnxruntime-node';\nexport const x = ort;\n"),
      [],
    );
    assert.deepEqual(
      await boundaryFindings(
        eslint,
        'src/florence/prompts.ts',
        "import { TASKS } from 'florence2-client/catalogue';\nexport const x = TASKS;\n",
      ),
      [],
    );
    assert.deepEqual(
      await boundaryFindings(
        eslint,
        'src/server/service.ts',
        "import { TASKS } from 'florence2-client/catalogue';\nexport const x = TASKS;\n",
      ),
      [],
    );
    assert.deepEqual(
      await boundaryFindings(eslint, 'packages/client/src/tasks.ts', "import { TASKS } from './catalogue';\nexport const x = TASKS;\n"),
      [],
    );
  });

  it('the circular-import check finds a planted cycle', async () => {
    // madge is what `npm run lint` runs for cycles.
    const dir = mkdtempSync(join(tmpdir(), 'cycle-'));
    try {
      writeFileSync(join(dir, 'a.ts'), "import { b } from './b';\nexport const a = () => b();\n");
      writeFileSync(join(dir, 'b.ts'), "import { a } from './a';\nexport const b = () => a;\n");
      writeFileSync(join(dir, 'c.ts'), 'export const c = 1;\n');
      const result = await madge(dir, { fileExtensions: ['ts'], tsConfig: join(ROOT, 'tsconfig.json') });
      assert.deepEqual(result.circular(), [['a.ts', 'b.ts']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
