import assert from 'node:assert/strict';
import { startTracing, tracingOn, tracingWanted } from '../../src/common/tracing';

describe('common/tracing: when it is on', () => {
  it('auto follows the standard OTEL_* variables; on and off decide alone', () => {
    const on = (mode: 'auto' | 'on' | 'off', env: NodeJS.ProcessEnv) => tracingWanted(mode, env).on;
    assert.equal(on('auto', {}), false);
    assert.equal(on('auto', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
    assert.equal(on('auto', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), true);
    assert.equal(on('auto', { OTEL_TRACES_EXPORTER: 'otlp' }), true);
    assert.equal(on('auto', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), false);
    assert.equal(on('auto', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), false);
    assert.equal(on('auto', { OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), false);
    assert.equal(on('on', { OTEL_SDK_DISABLED: 'true' }), true);
    assert.equal(on('off', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), false);
    assert.match(tracingWanted('auto', { OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_EXPORTER: 'otlp' }).why, /OTEL_SDK_DISABLED/);
  });

  it('refuses an OTLP protocol it cannot export, naming the variable', () => {
    assert.throws(
      () => startTracing('on', { version: 't' }, { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }),
      /^RangeError: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: must be http\/protobuf or http\/json .*got "grpc"$/,
    );
    assert.equal(tracingOn(), false);
  });
});
