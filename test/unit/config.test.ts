import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, helpText, isHelpRequested, loadConfig, type Config } from '../../src/config/load';
import { AUTO_BATCHING, SETTINGS, batchingFor, parseDevice } from '../../src/config/schema';
import { MODULES } from '../../src/runtime/model-files';

/** Asserts that `fn` throws a ConfigError and returns its problems. */
function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

/** Asserts exactly one problem matching `re`. */
function oneProblem(fn: () => unknown, re: RegExp): string {
  const problems = problemsOf(fn);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.join('\n')}`);
  assert.match(problems[0], re);
  return problems[0];
}

describe('config/load', () => {
  let tmp: string;
  let model: string;
  let n = 0;
  /** Writes a JSON config file and returns its path. */
  const file = (data: unknown): string => {
    const p = join(tmp, `config-${n++}.json`);
    writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
    return p;
  };
  const load = (argv: string[] = [], env: NodeJS.ProcessEnv = {}): Config =>
    loadConfig(['--model', model, ...argv], env, { availableParallelism: 8 });

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'florence2-config-'));
    model = join(tmp, 'model');
    mkdirSync(model);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  describe('defaults', () => {
    it('fills every setting but the model from the table', () => {
      const c = load();
      assert.deepEqual(c, {
        model,
        offline: false,
        host: '0.0.0.0',
        port: 50051,
        metricsPort: 9464,
        metricsHost: '0.0.0.0',
        devices: [{ name: 'cpu:0', provider: 'cpu', deviceId: 0 }],
        workersPerDevice: 1,
        intraOpThreads: 8,
        allowCpuFallback: false,
        cpuMemoryArena: true,
        dtype: 'auto',
        resample: 'pil',
        maxImagePixels: 50_000_000,
        maxMessageBytes: 52_428_800,
        httpPort: -1,
        // a base64 JSON body of the largest message, and room for the rest of the JSON
        httpMaxBodyBytes: Math.ceil(52_428_800 / 3) * 4 + 64 * 1024,
        requestMemoryBytes: 536_870_912,
        maxInflightPerClient: 64,
        rateLimitPerClient: 0,
        rateLimitBurst: 0,
        maxInFlightPerDevice: 1,
        maxBatchRows: 0,
        maxQueueDelayMs: -1,
        maxVisionBatch: 0,
        maxQueuePerDevice: 16,
        maxNumBeams: 8,
        maxNewTokens: 1024,
        maxTextChars: 2000,
        maxClasses: 32,
        maxRequestMs: 300_000,
        maxRequestTokens: 98_304,
        tlsCert: null,
        tlsKey: null,
        tlsClientCa: null,
        authTokensFile: null,
        reflection: 'auto',
        maxConnectionAgeMs: 0,
        maxConnectionAgeGraceMs: 0,
        shutdownGraceMs: 30_000,
        logLevel: 'info',
        logFormat: 'auto',
        tracing: 'auto',
        configFile: null,
        testHooks: false,
      });
    });

    it('checks the hardening settings together: budget ≥ message size, TLS cert with key, mTLS needs TLS', () => {
      oneProblem(() => load(['--max-message-bytes', '2048', '--request-memory-bytes', '1024']), /request memory budget \(1024\).*2048/);
      oneProblem(() => load(['--tls-cert', join(tmp, 'cert.pem')]), /--tls-cert and --tls-key go together/);
      oneProblem(() => load(['--tls-key', join(tmp, 'key.pem')]), /--tls-cert and --tls-key go together/);
      oneProblem(() => load(['--tls-client-ca', join(tmp, 'ca.pem')]), /needs --tls-cert and --tls-key/);
      const c = load(['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--tls-client-ca', 'ca.pem', '--reflection', 'off']);
      assert.equal(c.tlsCert, resolve('c.pem'));
      assert.equal(c.reflection, 'off');
      oneProblem(() => load(['--reflection', 'maybe']), /auto\|on\|off/);
    });

    it('resolves batching per device kind: auto values for CPU and GPU, explicit settings for both', () => {
      const auto = loadConfig(['--model', tmp], {}, { cwd: tmp });
      assert.deepEqual(batchingFor(auto, { provider: 'cpu' }), AUTO_BATCHING.cpu);
      assert.deepEqual(batchingFor(auto, { provider: 'cuda' }), AUTO_BATCHING.gpu);
      const set = loadConfig(
        ['--model', tmp, '--max-batch-rows', '1', '--max-queue-delay-ms', '0', '--max-vision-batch', '2'],
        {},
        { cwd: tmp },
      );
      for (const provider of ['cpu', 'webgpu'] as const)
        assert.deepEqual(batchingFor(set, { provider }), { maxBatchRows: 1, maxQueueDelayMs: 0, maxVisionBatch: 2 });
      assert.throws(() => loadConfig(['--model', tmp, '--max-queue-delay-ms', '-2'], {}, { cwd: tmp }), /--max-queue-delay-ms/);
    });

    it('defaults to the Hub model base-ft; takes Hub names; a missing path is an error, not a download', () => {
      assert.equal(loadConfig([], {}).model, 'hub:base-ft');
      assert.equal(loadConfig(['--model', 'large-ft'], {}, { cwd: tmp }).model, 'hub:large-ft');
      assert.equal(loadConfig(['--model', 'someone/Florence-2-custom'], {}, { cwd: tmp }).model, 'hub:someone/Florence-2-custom');
      oneProblem(
        () => loadConfig(['--model', join(tmp, 'nope')], {}),
        /^--model: must be an existing directory, got '.*nope' \(no such file or directory\)$/,
      );
      oneProblem(() => loadConfig(['--model', './nope'], {}, { cwd: tmp }), /^--model: must be an existing directory/);
      const f = file({});
      oneProblem(() => loadConfig(['--model', f], {}), /^--model: must be an existing directory, got '.*' \(not a directory\)$/);
    });

    it('resolves a relative model path against the cwd (flags, env) or the config file folder (file)', () => {
      assert.equal(loadConfig(['--model', 'model'], {}, { cwd: tmp }).model, model);
      assert.equal(loadConfig([], { FLORENCE2_MODEL: './model' }, { cwd: tmp }).model, model);
      assert.equal(loadConfig(['--config', file({ model: 'model' })], {}, { cwd: '/' }).model, model);
    });
  });

  describe('sources and precedence', () => {
    it('flag > env > file > default, per setting', () => {
      const cfg = file({ port: 1001, maxClasses: 5, logLevel: 'warn', host: '127.0.0.1' });
      const env = { FLORENCE2_PORT: '1002', FLORENCE2_MAX_CLASSES: '6', FLORENCE2_CONFIG: cfg };
      const c = load(['--port', '1003'], env);
      assert.equal(c.port, 1003); // flag over env and file
      assert.equal(c.maxClasses, 6); // env over file
      assert.equal(c.logLevel, 'warn'); // file over default
      assert.equal(c.host, '127.0.0.1');
      assert.equal(c.maxNumBeams, 8); // default
      assert.equal(c.configFile, cfg);
      assert.equal(load([], env).port, 1002);
      assert.equal(load(['--config', cfg]).port, 1001);
      assert.equal(load().port, 50051);
    });

    it('--config beats FLORENCE2_CONFIG', () => {
      const a = file({ port: 1 });
      const b = file({ port: 2 });
      assert.equal(load(['--config', a], { FLORENCE2_CONFIG: b }).port, 1);
    });

    it('accepts --flag value and --flag=value; the last occurrence wins', () => {
      assert.equal(load(['--port=7']).port, 7);
      assert.equal(load(['--port', '7', '--port', '8']).port, 8);
      assert.equal(load(['--metrics-port', '-1']).metricsPort, -1);
      assert.equal(load(['--host=::1']).host, '::1');
    });

    it('booleans: --flag, --no-flag, --flag=false; env true/false/1/0', () => {
      assert.equal(load(['--allow-cpu-fallback']).allowCpuFallback, true);
      assert.equal(load(['--allow-cpu-fallback=false']).allowCpuFallback, false);
      assert.equal(load(['--no-allow-cpu-fallback'], { FLORENCE2_ALLOW_CPU_FALLBACK: 'true' }).allowCpuFallback, false);
      for (const [v, want] of [
        ['true', true],
        ['1', true],
        ['TRUE', true],
        ['false', false],
        ['0', false],
      ] as const) {
        assert.equal(load([], { FLORENCE2_ALLOW_CPU_FALLBACK: v }).allowCpuFallback, want, v);
      }
      assert.equal(load(['--config', file({ allowCpuFallback: true })]).allowCpuFallback, true);
      assert.equal(load(['--no-cpu-memory-arena']).cpuMemoryArena, false);
      assert.equal(load([], { FLORENCE2_CPU_MEMORY_ARENA: '0' }).cpuMemoryArena, false);
      oneProblem(
        () => load([], { FLORENCE2_ALLOW_CPU_FALLBACK: 'yes' }),
        /^FLORENCE2_ALLOW_CPU_FALLBACK: must be true or false \(or 1 or 0\), got 'yes'$/,
      );
      // offline also takes the words the Hub code reads FLORENCE2_OFFLINE with.
      for (const [v, want] of [
        ['yes', true],
        ['On', true],
        ['no', false],
        ['off', false],
        ['1', true],
      ] as const)
        assert.equal(load([], { FLORENCE2_OFFLINE: v }).offline, want, v);
      assert.equal(load(['--offline']).offline, true);
      oneProblem(() => load([], { FLORENCE2_OFFLINE: 'maybe' }), /^FLORENCE2_OFFLINE: must be true or false .*got 'maybe'$/);
      oneProblem(() => load(['--no-allow-cpu-fallback=1']), /^--no-allow-cpu-fallback: takes no value/);
      // A boolean flag does not swallow the next argument.
      oneProblem(() => load(['--allow-cpu-fallback', 'false']), /^unexpected argument 'false'/);
    });

    it('the hidden test-hooks setting works from flag and env', () => {
      assert.equal(load().testHooks, false);
      assert.equal(load(['--test-hooks']).testHooks, true);
      assert.equal(load([], { FLORENCE2_TEST_HOOKS: '1' }).testHooks, true);
    });

    it('an empty env var counts as unset; unrelated env vars are ignored', () => {
      assert.equal(load([], { FLORENCE2_PORT: '', HOME: '/x', PORT: 'abc' }).port, 50051);
    });

    it('file values may be JSON numbers, booleans, arrays and objects; null means unset', () => {
      const c = load([
        '--config',
        file({ port: 0, devices: ['cuda:1', 'cpu'], dtype: { decoder_model_merged: 'q4' }, maxQueuePerDevice: null }),
      ]);
      assert.equal(c.port, 0);
      assert.deepEqual(
        c.devices.map((d) => d.name),
        ['cuda:1', 'cpu:0'],
      );
      assert.deepEqual(c.dtype, { vision_encoder: 'fp32', embed_tokens: 'fp32', encoder_model: 'fp32', decoder_model_merged: 'q4' });
      assert.equal(c.maxQueuePerDevice, 16);
    });

    it('--help is ignored by loadConfig (the caller prints help first)', () => {
      assert.equal(load(['--help']).port, 50051);
      assert.equal(isHelpRequested(['--port', '1', '--help']), true);
      assert.equal(isHelpRequested(['-h']), true);
      assert.equal(isHelpRequested(['--port', '1']), false);
      assert.equal(isHelpRequested(['--', '--help']), false);
    });
  });

  describe('problems', () => {
    it('reports every problem in one ConfigError, each naming its source', () => {
      const cfg = file({ prot: 1, logLevel: 'loud', maxNewTokens: 5000 });
      let error: unknown;
      try {
        loadConfig(['--port', 'abc', '--bogus', '--workers-per-device=0', 'stray', '--devices', 'gpu:1', '--config', cfg, '--dtype'], {
          FLORENCE2_MAX_NUM_BEAMS: '99',
          FLORENCE2_RESAMPLE: 'lanczos',
        });
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof ConfigError);
      const expected = [
        /^--port: must be an integer in \[0, 65535\], got 'abc'$/,
        /^unknown flag --bogus$/,
        /^--workers-per-device: must be an integer in \[1, 64\], got '0'$/,
        /^unexpected argument 'stray'/,
        /^--devices: unknown device 'gpu:1' \(expected cpu, cpu:N, cuda:N, tensorrt:N or webgpu\)/,
        /^--dtype: missing value \(--dtype DTYPE\)$/,
        /^FLORENCE2_MAX_NUM_BEAMS: must be an integer in \[1, 16\], got '99'$/,
        /^FLORENCE2_RESAMPLE: must be one of pil\|sharp, got 'lanczos'$/,
        /^config file .*\.json: unknown key 'prot' \(did you mean port\?\)$/,
        /^config file .*\.json: logLevel: must be one of debug\|info\|warn\|error, got 'loud'$/,
        /^config file .*\.json: maxNewTokens: must be an integer in \[1, 4096\], got 5000$/,
      ];
      for (const re of expected)
        assert.ok(
          error.problems.some((p) => re.test(p)),
          `no problem matches ${re}:\n${error.problems.join('\n')}`,
        );
      assert.equal(error.problems.length, expected.length, error.problems.join('\n'));
      // The message lists them all too.
      for (const p of error.problems) assert.ok(error.message.includes(p));
      assert.match(error.message, /^invalid configuration \(11 problems\):\n {2}- /);
    });

    it('checks values that a higher-precedence source overrides', () => {
      oneProblem(() => load(['--port', '1'], { FLORENCE2_PORT: 'x' }), /^FLORENCE2_PORT: must be an integer/);
    });

    it('suggests the closest flag for a typo', () => {
      oneProblem(() => load(['--metrics-prot', '1']), /^unknown flag --metrics-prot \(did you mean --metrics-port\?\)$/);
      oneProblem(() => load(['--no-port']), /^unknown flag --no-port/);
      oneProblem(() => load(['-p', '1']), /unknown flag -p/);
    });

    it('range limits, including the edges', () => {
      assert.equal(load(['--port', '65535']).port, 65535);
      oneProblem(() => load(['--port', '65536']), /^--port: must be an integer in \[0, 65535\], got '65536'$/);
      oneProblem(() => load(['--port', '1.5']), /got '1.5'/);
      oneProblem(() => load(['--metrics-port', '-2']), /^--metrics-port: must be an integer in \[-1, 65535\]/);
      oneProblem(() => load(['--max-queue-per-device', '100001']), /\[0, 100000\]/);
      assert.equal(load(['--max-queue-per-device', '0']).maxQueuePerDevice, 0);
      oneProblem(() => load(['--max-message-bytes', '3000000000']), /^--max-message-bytes: must be an integer in \[1024, 2147483647\]/);
      oneProblem(() => load(['--host', ' ']), /^--host: must be a non-empty string/);
    });

    it('rejects the same port for gRPC and metrics', () => {
      oneProblem(
        () => load(['--port', '9464']),
        /^--port and --metrics-port \(default\): the gRPC port and the metrics port must differ, both are 9464$/,
      );
      assert.equal(load(['--port', '0', '--metrics-port', '0']).port, 0);
    });

    it('maximum connection age: 0 (off) or at least a second; its grace needs it', () => {
      const c = load([], { FLORENCE2_MAX_CONNECTION_AGE_MS: '300000', FLORENCE2_MAX_CONNECTION_AGE_GRACE_MS: '330000' });
      assert.deepEqual([c.maxConnectionAgeMs, c.maxConnectionAgeGraceMs], [300_000, 330_000]);
      assert.equal(load(['--max-connection-age-ms', '1000']).maxConnectionAgeMs, 1000);
      assert.equal(load(['--max-connection-age-ms', '0']).maxConnectionAgeMs, 0);
      // A few milliseconds would make every client reconnect all the time: a typo, not a setting.
      oneProblem(
        () => load(['--max-connection-age-ms', '999']),
        /^--max-connection-age-ms: must be 0 \(off\) or an integer in \[1000, 86400000\], got '999'$/,
      );
      oneProblem(() => load([], { FLORENCE2_MAX_CONNECTION_AGE_MS: '5m' }), /^FLORENCE2_MAX_CONNECTION_AGE_MS: must be 0 \(off\) or/);
      oneProblem(
        () => load(['--max-connection-age-ms', '60000', '--max-connection-age-grace-ms', '-1']),
        /^--max-connection-age-grace-ms: must be an integer in \[0, 86400000\]/,
      );
      oneProblem(
        () => load(['--max-connection-age-grace-ms', '1000']),
        /^--max-connection-age-grace-ms: a grace for aged connections has no effect without a maximum age \(--max-connection-age-ms is 0\)$/,
      );
    });

    it('config file problems: unreadable, invalid JSON, not an object, configFile inside', () => {
      oneProblem(() => load(['--config', join(tmp, 'missing.json')]), /^--config: cannot read '.*missing\.json': ENOENT/);
      oneProblem(() => load([], { FLORENCE2_CONFIG: file('{ nope') }), /^config file .*: invalid JSON: /);
      oneProblem(() => load(['--config', file([1])]), /must be a JSON object of settings, got an array/);
      oneProblem(() => load(['--config', file({ configFile: 'x.json' })]), /configFile cannot be set inside a config file/);
    });
  });

  describe('devices', () => {
    const names = (spec: string): string[] => load(['--devices', spec]).devices.map((d) => d.name);

    it('parses every form', () => {
      assert.deepEqual(load(['--devices', 'cpu']).devices, [{ name: 'cpu:0', provider: 'cpu', deviceId: 0 }]);
      assert.deepEqual(load(['--devices', 'cpu:0,cpu:1']).devices, [
        { name: 'cpu:0', provider: 'cpu', deviceId: 0 },
        { name: 'cpu:1', provider: 'cpu', deviceId: 1 },
      ]);
      assert.deepEqual(load(['--devices', 'cuda:0, cuda:1']).devices, [
        { name: 'cuda:0', provider: 'cuda', deviceId: 0 },
        { name: 'cuda:1', provider: 'cuda', deviceId: 1 },
      ]);
      assert.deepEqual(load(['--devices', 'tensorrt:2']).devices, [{ name: 'tensorrt:2', provider: 'tensorrt', deviceId: 2 }]);
      assert.deepEqual(load(['--devices', 'webgpu']).devices, [{ name: 'webgpu:0', provider: 'webgpu', deviceId: 0 }]);
      assert.deepEqual(names('cuda:0,tensorrt:1,cpu'), ['cuda:0', 'tensorrt:1', 'cpu:0']);
      assert.deepEqual(load([], { FLORENCE2_DEVICES: 'cuda:3' }).devices[0], { name: 'cuda:3', provider: 'cuda', deviceId: 3 });
    });

    it('rejects malformed items and duplicates', () => {
      const bad: Array<[string, RegExp]> = [
        ['gpu:1', /unknown device 'gpu:1'/],
        ['cuda:x', /'cuda:x': the device index must be an integer in \[0, 1023\]/],
        ['cuda:-1', /the device index must be an integer/],
        ['cuda', /'cuda' needs a device index \(cuda:N, e\.g\. cuda:0\)/],
        ['tensorrt', /needs a device index/],
        ['webgpu:1', /webgpu takes no device index/],
        ['cuda:0,cuda:0', /cuda:0 is listed more than once/],
        ['cpu,cpu:0', /cpu:0 is listed more than once/],
        ['cpu,,cuda:0', /item 2 is empty/],
        [',', /item 1 is empty; item 2 is empty/],
      ];
      for (const [spec, re] of bad) {
        const p = oneProblem(() => load(['--devices', spec]), re);
        assert.ok(p.startsWith('--devices: '), p);
      }
      oneProblem(() => load(['--config', file({ devices: [] })]), /devices: must name at least one device/);
      oneProblem(() => load(['--config', file({ devices: 3 })]), /devices: must be a comma-separated list/);
      // Several bad items are reported together.
      oneProblem(() => load(['--devices', 'gpu:1,cuda:x']), /unknown device 'gpu:1'.*; 'cuda:x'/);
    });

    it('parseDevice normalises case and leading zeros', () => {
      assert.deepEqual(parseDevice('CUDA:01'), { name: 'cuda:1', provider: 'cuda', deviceId: 1 });
    });
  });

  describe('dtype', () => {
    /** The dtype table of a config that names one (not `auto`). */
    const table = (c: Config) => {
      assert.notEqual(c.dtype, 'auto');
      return c.dtype as Exclude<Config['dtype'], 'auto'>;
    };

    it('auto by default and when asked', () => {
      assert.equal(load([]).dtype, 'auto');
      assert.equal(load(['--dtype', 'auto']).dtype, 'auto');
      assert.equal(load([], { FLORENCE2_DTYPE: ' auto ' }).dtype, 'auto');
    });

    it('one dtype for all modules', () => {
      const c = table(load(['--dtype', 'fp16']));
      for (const m of MODULES) assert.equal(c[m], 'fp16');
    });

    it('per module, others fp32', () => {
      assert.deepEqual(load(['--dtype', 'decoder_model_merged=q4, vision_encoder=fp16']).dtype, {
        vision_encoder: 'fp16',
        embed_tokens: 'fp32',
        encoder_model: 'fp32',
        decoder_model_merged: 'q4',
      });
      assert.equal(table(load([], { FLORENCE2_DTYPE: 'embed_tokens=q8' })).embed_tokens, 'q8');
    });

    it('accepts every listed dtype', () => {
      for (const d of ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'])
        assert.equal(table(load(['--dtype', d])).encoder_model, d);
    });

    it('rejects unknown dtypes, modules, duplicates and bare items in a list', () => {
      oneProblem(
        () => load(['--dtype', 'fp64']),
        /^--dtype: must be auto, one of fp32\|fp16\|q8\|int8\|uint8\|q4\|q4f16\|bnb4 or a list module=dtype/,
      );
      oneProblem(() => load(['--dtype', 'decoder=fp16']), /unknown module 'decoder'/);
      oneProblem(() => load(['--dtype', 'encoder_model=fp64']), /encoder_model: dtype must be one of/);
      oneProblem(() => load(['--dtype', 'encoder_model=fp16,encoder_model=q4']), /encoder_model is given more than once/);
      oneProblem(() => load(['--dtype', 'fp16,encoder_model=q4']), /unknown module 'fp16'/);
      oneProblem(
        () => load(['--config', file({ dtype: { encoder_model: 4 } })]),
        /^config file .*: dtype: encoder_model: dtype must be one of/,
      );
    });
  });

  describe('intra-op threads and in-flight cap', () => {
    const threads = (argv: string[], cores: number): number =>
      loadConfig(['--model', model, ...argv], {}, { availableParallelism: cores }).intraOpThreads;

    it('auto sizes by CPU pools × workers per device', () => {
      assert.equal(threads([], 16), 16);
      assert.equal(threads(['--devices', 'cpu:0,cpu:1'], 16), 8);
      assert.equal(threads(['--devices', 'cpu:0,cpu:1', '--workers-per-device', '3'], 16), 2);
      assert.equal(threads(['--devices', 'cpu:0,cpu:1,cpu:2,cpu:3'], 2), 1); // never below 1
      // GPU pools do not take CPU-pool shares when a CPU pool exists...
      assert.equal(threads(['--devices', 'cuda:0,cpu'], 16), 16);
      // ...and with no CPU pool, all pools share the cores.
      assert.equal(threads(['--devices', 'cuda:0,cuda:1'], 16), 8);
    });

    it('defaults to os.availableParallelism()', () => {
      const c = loadConfig(['--model', model, '--devices', 'cpu:0,cpu:1'], {});
      assert.equal(c.intraOpThreads, Math.max(1, Math.floor(availableParallelism() / 2)));
    });

    it('an explicit value wins', () => {
      assert.equal(threads(['--intra-op-threads', '3', '--devices', 'cpu:0,cpu:1'], 64), 3);
    });

    it('maxInFlightPerDevice 0 resolves to workersPerDevice', () => {
      assert.equal(load(['--workers-per-device', '4']).maxInFlightPerDevice, 4);
      assert.equal(load(['--workers-per-device', '4', '--max-in-flight-per-device', '2']).maxInFlightPerDevice, 2);
    });
  });

  describe('result', () => {
    it('is deep-frozen', () => {
      const c = load(['--devices', 'cpu:0,cpu:1']);
      assert.ok(Object.isFrozen(c));
      assert.ok(Object.isFrozen(c.devices));
      assert.ok(Object.isFrozen(c.devices[0]));
      assert.ok(Object.isFrozen(c.dtype));
      assert.throws(() => {
        (c as { port: number }).port = 1;
      }, TypeError);
      assert.throws(() => {
        (c.devices as unknown[]).push({});
      }, TypeError);
      // The table's defaults are not frozen through a result.
      assert.ok(!Object.isFrozen(SETTINGS.find((s) => s.key === 'devices')!.default));
    });
  });

  describe('table and help', () => {
    const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

    it('flag and env names follow the key (configFile is --config / FLORENCE2_CONFIG)', () => {
      for (const s of SETTINGS) {
        if (s.key === 'configFile') {
          assert.equal(s.flag, '--config');
          assert.equal(s.env, 'FLORENCE2_CONFIG');
        } else {
          assert.equal(s.flag, `--${kebab(s.key)}`, s.key);
          assert.equal(s.env, `FLORENCE2_${snake(s.key)}`, s.key);
        }
        assert.ok(s.doc.length > 0, s.key);
      }
    });

    it('every default passes its own parser', () => {
      for (const s of SETTINGS)
        if (s.default !== undefined && s.default !== null && typeof s.default !== 'object')
          assert.ok(s.parse(s.default, { baseDir: tmp }).ok, s.key);
    });

    it('help lists every non-hidden flag with its env var, default and doc; hidden ones are left out', () => {
      const help = helpText();
      const flat = help.replace(/\s+/g, ' '); // wrapping may split a phrase across lines
      assert.match(help, /^Usage: florence2 serve \[--model PATH\|NAME\] \[options\]/);
      for (const s of SETTINGS) {
        if (s.hidden) {
          assert.ok(!help.includes(s.flag), s.flag);
          assert.ok(!help.includes(s.env), s.env);
          continue;
        }
        assert.ok(new RegExp(`^  ${s.flag}[ ,\\n]`, 'm').test(help), `help misses ${s.flag}`);
        assert.ok(help.includes(`env ${s.env}`), `help misses ${s.env}`);
        assert.ok(flat.includes(s.defaultText), `help misses the default of ${s.key}`);
        assert.ok(flat.includes(s.doc), `help misses the doc of ${s.key}`);
      }
      assert.match(help, /--allow-cpu-fallback, --no-allow-cpu-fallback/);
      assert.match(help, /-h, --help/);
      for (const line of help.split('\n')) assert.ok(line.length <= 100, `long help line: ${line}`);
    });
  });
});
