/**
 * `npm run synth -- --size tiny|base|large [--seed N] [--script TEXT | --script-ids 1,2,3]
 *   [--dtype LIST of fp32,fp16,q8,int8,uint8,q4,q4f16,bnb4] [--plain-decoder] [--force] --out DIR`
 * `npm run synth -- --report` prints the cost table of every size without building.
 */
import { parseArgs } from 'node:util';
import { buildModel } from './build';
import { DTYPE_SUFFIX, isDtype, type Dtype } from '../../src/runtime/model-files';
import { isSizeName } from './sizes';
import { ScriptError } from './script';
import { costReport } from './report';

const USAGE = `Build a synthetic Florence-2 model folder (onnx-community layout, untrained weights).

Usage:
  npm run synth -- --size tiny|base|large --out DIR [options]
  npm run synth -- --report

Options:
  --size NAME        tiny (a few MB, for tests), base or large (real Florence-2 dimensions)
  --out DIR          folder to create (must not exist or be empty, unless --force)
  --seed N           seed of the random weights (default 0)
  --script TEXT      make the decoder emit TEXT (then </s>) under greedy and beam search,
                     whatever the image and prompt; e.g. 'car<loc_53><loc_333><loc_933><loc_774>'
  --script-ids IDS   the same with comma-separated token ids
  --dtype LIST       which variants to write, comma-separated (default fp32): fp32, fp16, q8
                     (*_quantized.onnx), int8, uint8, q4, q4f16, bnb4; e.g. fp32,q4,int8
  --plain-decoder    also write onnx/decoder_model.onnx (the decoder without cache)
  --force            replace an existing folder
  --report           print parameters and FLOPs per size, build nothing
  -h, --help         this text
`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      script: { type: 'string' },
      'script-ids': { type: 'string' },
      dtype: { type: 'string' },
      'plain-decoder': { type: 'boolean' },
      force: { type: 'boolean' },
      report: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.report) {
    process.stdout.write(costReport());
    return 0;
  }
  const errors: string[] = [];
  if (!values.size || !isSizeName(values.size)) errors.push('--size must be tiny, base or large');
  if (!values.out) errors.push('--out DIR is required');
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) errors.push(`--seed must be an integer in [0, 2^32): ${values.seed}`);
  const dtypes = (values.dtype ?? 'fp32').split(',');
  const unknown = dtypes.filter((d) => !isDtype(d));
  if (unknown.length > 0 || new Set(dtypes).size !== dtypes.length)
    errors.push(`--dtype takes a list of distinct variants from ${Object.keys(DTYPE_SUFFIX).join(', ')}: ${values.dtype}`);
  let scriptIds: number[] | undefined;
  if (values['script-ids'] !== undefined) {
    scriptIds = values['script-ids']
      .split(',')
      .filter((s) => s.trim() !== '')
      .map(Number);
    if (scriptIds.some((n) => !Number.isInteger(n))) errors.push(`--script-ids takes comma-separated integers: ${values['script-ids']}`);
  }
  if (values.script !== undefined && scriptIds !== undefined) errors.push('give --script or --script-ids, not both');
  if (errors.length > 0) {
    process.stderr.write(errors.map((e) => `error: ${e}`).join('\n') + `\n\n${USAGE}`);
    return 2;
  }
  const result = await buildModel({
    size: values.size as 'tiny',
    out: values.out!,
    seed,
    script: values.script,
    scriptIds,
    dtypes: dtypes as Dtype[],
    plainDecoder: values['plain-decoder'],
    force: values.force,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const total = result.files.reduce((s, f) => s + f.bytes, 0);
  process.stdout.write(`built ${result.dir}: ${(total / 1e6).toFixed(1)} MB of ONNX in ${result.seconds.toFixed(1)} s\n`);
  if (result.plan) process.stdout.write(`decoder emits ids ${JSON.stringify([2, ...result.plan.outputs])}\n`);
  return 0;
}

/** Runs the builder CLI; resolves with the exit code (0 ok, 1 unexpected failure, 2 usage or impossible script). */
export function synthMain(argv: string[]): Promise<number> {
  return main(argv).catch((err: unknown) => {
    const known =
      err instanceof ScriptError || (err instanceof Error && /exists and is not empty|Unknown option|argument/.test(err.message));
    process.stderr.write(`error: ${err instanceof Error ? (known ? err.message : err.stack) : String(err)}\n`);
    return known ? 2 : 1;
  });
}

if (require.main === module) void synthMain(process.argv.slice(2)).then((code) => process.exit(code));
