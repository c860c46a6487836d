import assert from 'node:assert/strict';
import { LOG_LEVELS, createLogger, logContext, withLogContext, type LogLevel } from '../../src/common/logger';

/** A sink that keeps what was written. */
function sink(): { write(s: string): void; text: string; lines(): Record<string, unknown>[] } {
  const s = {
    text: '',
    write(chunk: string) {
      s.text += chunk;
    },
    lines: () =>
      s.text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  return s;
}

describe('common/logger', () => {
  it('writes one JSON object per line: time, level, msg and the fields', () => {
    const out = sink();
    const log = createLogger({ level: 'debug', stream: out });
    log.info('listening', { port: 50051, devices: ['cpu:0'] });
    log.debug('detail');
    assert.equal(out.text.split('\n').length, 3); // two lines plus the trailing newline
    const [a, b] = out.lines();
    assert.deepEqual(Object.keys(a).sort(), ['devices', 'level', 'msg', 'port', 'time']);
    assert.equal(a.level, 'info');
    assert.equal(a.msg, 'listening');
    assert.equal(a.port, 50051);
    assert.deepEqual(a.devices, ['cpu:0']);
    assert.equal(typeof a.time, 'string');
    assert.equal(new Date(a.time as string).toISOString(), a.time); // ISO 8601
    assert.deepEqual(Object.keys(b).sort(), ['level', 'msg', 'time']);
  });

  it('drops lines below the configured level', () => {
    const ranks = (level: LogLevel): string[] => {
      const out = sink();
      const log = createLogger({ level, stream: out });
      for (const l of LOG_LEVELS) log[l](l);
      return out.lines().map((e) => e.msg as string);
    };
    assert.deepEqual(ranks('debug'), ['debug', 'info', 'warn', 'error']);
    assert.deepEqual(ranks('info'), ['info', 'warn', 'error']);
    assert.deepEqual(ranks('warn'), ['warn', 'error']);
    assert.deepEqual(ranks('error'), ['error']);
    assert.equal(createLogger({ level: 'warn', stream: sink() }).level, 'warn');
  });

  it('rejects an unknown level', () => {
    assert.throws(() => createLogger({ level: 'loud' as LogLevel, stream: sink() }), /unknown level "loud"/);
  });

  it('binds fields in the root and in children; call-site fields win', () => {
    const out = sink();
    const root = createLogger({ level: 'info', stream: out, fields: { service: 'florence2' } });
    const req = root.child({ requestId: 'r1', device: 'cpu:0' });
    req.info('done', { device: 'cuda:1', ms: 12 });
    root.info('plain');
    const [a, b] = out.lines();
    assert.deepEqual(
      { ...a, time: 0 },
      { time: 0, level: 'info', msg: 'done', service: 'florence2', requestId: 'r1', device: 'cuda:1', ms: 12 },
    );
    assert.equal(b.requestId, undefined); // a child does not leak into its parent
    assert.equal(req.level, 'info');
  });

  it('serialises Errors (also nested and with a cause) as name, message, stack', () => {
    const out = sink();
    const log = createLogger({ level: 'info', stream: out });
    const err = Object.assign(new RangeError('bad thing', { cause: new Error('root cause') }), { code: 'E_BAD' });
    log.error('failed', { err, nested: { inner: new TypeError('inner') } });
    const [line] = out.lines();
    const e = line.err as Record<string, unknown>;
    assert.equal(e.name, 'RangeError');
    assert.equal(e.message, 'bad thing');
    assert.match(e.stack as string, /RangeError: bad thing/);
    assert.equal(e.code, 'E_BAD');
    assert.equal((e.cause as Record<string, unknown>).message, 'root cause');
    assert.equal(((line.nested as Record<string, unknown>).inner as Record<string, unknown>).name, 'TypeError');
  });

  it('never throws on awkward fields: bigint, cycles, reserved names, undefined', () => {
    const out = sink();
    const log = createLogger({ level: 'info', stream: out });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    log.info('odd', { big: 12n, cyclic, msg: 'shadow', level: 'x', gone: undefined });
    const [line] = out.lines();
    assert.equal(line.msg, 'odd');
    assert.equal(line.level, 'info');
    assert.equal(line._msg, 'shadow');
    assert.equal(line._level, 'x');
    assert.equal(line.big, '12');
    assert.deepEqual(line.cyclic, { a: 1, self: '[Circular]' });
    assert.ok(!('gone' in line));
  });

  it('survives a sink that throws', () => {
    const log = createLogger({
      level: 'info',
      stream: {
        write() {
          throw new Error('EPIPE');
        },
      },
    });
    assert.doesNotThrow(() => log.error('x'));
  });

  it('never writes a key twice: call-site fields replace bound ones on the line itself', () => {
    const out = sink();
    createLogger({ level: 'info', stream: out, fields: { device: 'cpu:0' } })
      .child({ device: 'cpu:1' })
      .info('x', { device: 'cuda:0' });
    assert.equal(out.text.match(/"device"/g)?.length, 1);
    assert.equal(out.lines()[0].device, 'cuda:0');
  });

  it('adds the fields of withLogContext to every line inside it, across awaits, by any logger', async () => {
    const out = sink();
    const a = createLogger({ level: 'info', stream: out });
    const b = createLogger({ level: 'info', stream: out, fields: { component: 'worker' } });
    await withLogContext({ requestId: 'r1', traceId: 't1' }, async () => {
      a.info('first');
      await new Promise((r) => setImmediate(r));
      await withLogContext({ batchId: 3 }, async () => b.info('second', { traceId: 'explicit' }));
      assert.deepEqual(logContext(), { requestId: 'r1', traceId: 't1' });
    });
    a.info('outside');
    const [first, second, outside] = out.lines();
    assert.equal(first.requestId, 'r1');
    assert.equal(first.traceId, 't1');
    assert.deepEqual([second.requestId, second.traceId, second.batchId, second.component], ['r1', 'explicit', 3, 'worker']);
    assert.ok(!('requestId' in outside));
    assert.deepEqual(logContext(), {});
  });

  it('pretty-prints for a terminal, and rejects an unknown format', () => {
    const out = sink();
    createLogger({ level: 'info', stream: out, format: 'pretty' }).info('listening', { port: 50051 });
    assert.match(out.text, /INFO.*listening/);
    assert.match(out.text, /port: 50051/);
    assert.throws(() => JSON.parse(out.text));
    assert.throws(() => createLogger({ level: 'info', stream: sink(), format: 'xml' as 'json' }), /unknown format "xml"/);
  });

  it('writes to process.stderr by default', () => {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- restored as it was, on the same object
    const original = process.stderr.write;
    let captured = '';
    process.stderr.write = (chunk: string) => {
      captured += chunk;
      return true;
    };
    try {
      createLogger({ level: 'info' }).info('to stderr');
    } finally {
      process.stderr.write = original;
    }
    assert.equal(JSON.parse(captured).msg, 'to stderr');
  });
});
