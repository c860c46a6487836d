/**
 * The default process and Node.js metrics of a running server carry their standard names
 * (`process_*`, `nodejs_*`), the ones stock Node.js dashboards query; only our own are `florence2_*`.
 * A request refused by validation is counted under the task it asked for.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { call, metricSample, scrapeMetrics, startServerProcess, type ServerProcess } from '../helpers/server-process';
import { carTiny } from '../helpers/synth-models';

describe('metric names (server process)', function () {
  this.timeout(120_000);
  let s: ServerProcess;
  before(async () => {
    s = await startServerProcess(['--model', await carTiny(), '--devices', 'cpu']);
    await s.serving;
  });
  after(async () => {
    await s?.stop();
  });

  it('/metrics has process_cpu_seconds_total and nodejs_heap_size_used_bytes, nothing florence2_process_* or florence2_nodejs_*', async () => {
    const text = await scrapeMetrics(s);
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.equal(types.get('process_cpu_seconds_total'), 'counter');
    assert.equal(types.get('process_resident_memory_bytes'), 'gauge');
    assert.equal(types.get('nodejs_heap_size_used_bytes'), 'gauge');
    assert.equal(types.get('nodejs_eventloop_lag_seconds'), 'gauge');
    const cpu = /^process_cpu_seconds_total (\S+)$/m.exec(text);
    assert.ok(cpu && Number(cpu[1]) > 0, 'the CPU counter has a value');
    const heap = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
    assert.ok(heap && Number(heap[1]) > 1e6, 'the heap gauge has a value');
    for (const name of types.keys()) {
      assert.doesNotMatch(name, /^florence2_(process|nodejs)_/);
      assert.match(name, /^(florence2|process|nodejs)_/, `${name}: ours are florence2_*, the defaults process_* / nodejs_*`);
    }
  });

  it('a request that fails validation is counted under the task it asked for, not "unknown"', async () => {
    const count = (text: string, task: string) => metricSample(text, 'florence2_requests_total', { task, code: 'INVALID_ARGUMENT' }) ?? 0;
    const before = await scrapeMetrics(s);
    const refused = async (rpc: string, request: object) => {
      const err = await call(s.client, rpc, request).then(
        () => assert.fail(`${rpc} succeeded`),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
    };
    // No image: validation fails before anything else is known of the request but its task.
    await refused('Detect', { kind: 'DETECT_KIND_DENSE_REGION_CAPTIONS' });
    await refused('DescribeRegion', { task: 'REGION_TASK_OCR' });
    await refused('Run', { ocr: { with_regions: true } });
    await refused('Caption', {});
    const after = await scrapeMetrics(s);
    for (const task of ['dense_region_caption', 'region_to_ocr', 'ocr_with_region', 'caption'])
      assert.equal(count(after, task) - count(before, task), 1, task);
    assert.equal(count(after, 'unknown'), count(before, 'unknown'), 'nothing counted as unknown');
  });
});
