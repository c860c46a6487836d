/**
 * `npm run demo`: serve a tiny scripted synthetic model (built on first run into .cache/demo-model),
 * so a fresh checkout has a running server without downloading anything: gRPC on 50051, metrics on
 * 9464 (serve's defaults) and the HTTP/JSON API on 8080, which examples/ use. Extra arguments go to
 * `florence2 serve` (e.g. `npm run demo -- --port 50052 --http-port 8081`).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildModel } from './synth/build';
import { serve } from '../src/cli/serve';

const DEMO_DIR = resolve(__dirname, '../.cache/demo-model');
/** `<OD>` on any image returns one "car" box. */
const DEMO_SCRIPT = 'car<loc_53><loc_333><loc_933><loc_774>';
/** serve's HTTP/JSON API is off by default; the demo turns it on unless told otherwise. */
const DEMO_HTTP_PORT = '8080';

function httpPortGiven(args: string[], env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.FLORENCE2_HTTP_PORT) || args.some((a) => a === '--http-port' || a.startsWith('--http-port='));
}

async function main(): Promise<number> {
  if (!existsSync(resolve(DEMO_DIR, 'synthetic.json'))) {
    process.stderr.write(`building the demo model (tiny, scripted: ${DEMO_SCRIPT}) into ${DEMO_DIR}\n`);
    await buildModel({ size: 'tiny', script: DEMO_SCRIPT, out: DEMO_DIR, force: true });
  }
  const args = process.argv.slice(2);
  const http = httpPortGiven(args, process.env) ? [] : ['--http-port', DEMO_HTTP_PORT];
  return serve(['--model', DEMO_DIR, ...http, ...args], process.env);
}

void main().then((code) => process.exit(code));
