/**
 * `npm run demo`: serve a tiny scripted synthetic model (built on first run into .cache/demo-model),
 * so a fresh checkout has a running server without downloading anything. Extra arguments go to
 * `florence2 serve` (e.g. `npm run demo -- --port 50052`).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildModel } from './synth/build';
import { serve } from '../src/cli/serve';

const DEMO_DIR = resolve(__dirname, '../.cache/demo-model');
/** `<OD>` on any image returns one "car" box. */
const DEMO_SCRIPT = 'car<loc_53><loc_333><loc_933><loc_774>';

async function main(): Promise<number> {
  if (!existsSync(resolve(DEMO_DIR, 'synthetic.json'))) {
    process.stderr.write(`building the demo model (tiny, scripted: ${DEMO_SCRIPT}) into ${DEMO_DIR}\n`);
    await buildModel({ size: 'tiny', script: DEMO_SCRIPT, out: DEMO_DIR, force: true });
  }
  return serve(['--model', DEMO_DIR, ...process.argv.slice(2)], process.env);
}

void main().then((code) => process.exit(code));
