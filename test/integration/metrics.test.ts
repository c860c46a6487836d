import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Metrics, TASK_LABELS, codeLabel, taskLabel, type DeviceGauges } from '../../src/metrics/registry';
import { startMetricsServer, type MetricsServer } from '../../src/metrics/http';
import { TASK_TOKENS } from 'florence2-client/catalogue';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition into samples (enough for the label values prom-client writes). */
function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with `name` and exactly-matching `labels` (undefined when absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(hits.length <= 1, `${hits.length} samples for ${name} ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** A plain HTTP request (not fetch) so the method and keep-alive behaviour are explicit. */
function http(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string; allow?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body, allow: res.headers.allow }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics', () => {
  let metrics: Metrics;
  let server: MetricsServer;
  let ready = false;
  let devices: DeviceGauges[] = [];
  const scrape = async (): Promise<Sample[]> => {
    const res = await http(server.port, '/metrics');
    assert.equal(res.status, 200);
    return parseSamples(res.body);
  };

  before(async () => {
    metrics = new Metrics();
    metrics.setDeviceGaugesSource(() => devices);
    server = await startMetricsServer({ metrics, host: '127.0.0.1', port: 0, isReady: () => ready });
  });
  after(() => server.close());

  describe('HTTP endpoint', () => {
    it('binds a free port when asked for port 0', () => {
      assert.ok(server.port > 0);
    });

    it('serves /metrics in the Prometheus text format', async () => {
      const res = await http(server.port, '/metrics');
      assert.equal(res.status, 200);
      assert.equal(res.type, metrics.contentType);
      assert.match(res.type, /^text\/plain; version=0\.0\.4/);
      assert.match(res.body, /^# HELP florence2_/m);
      // Query strings do not change the route.
      assert.equal((await http(server.port, '/metrics?x=1')).status, 200);
    });

    it('/livez is 200 ok; /readyz follows isReady (503 → 200 → 503)', async () => {
      assert.deepEqual(await http(server.port, '/livez').then((r) => [r.status, r.body]), [200, 'ok']);
      ready = false;
      assert.equal((await http(server.port, '/readyz')).status, 503);
      ready = true;
      assert.deepEqual(await http(server.port, '/readyz').then((r) => [r.status, r.body]), [200, 'ok']);
      ready = false;
      assert.equal((await http(server.port, '/readyz')).status, 503);
    });

    it('404 for other paths, 405 for other methods', async () => {
      assert.equal((await http(server.port, '/')).status, 404);
      assert.equal((await http(server.port, '/metricsx')).status, 404);
      const post = await http(server.port, '/metrics', 'POST');
      assert.equal(post.status, 405);
      assert.equal(post.allow, 'GET');
      assert.equal((await http(server.port, '/readyz', 'DELETE')).status, 405);
    });

    it('/livez follows isLive; close() is idempotent; a taken port rejects clearly', async () => {
      let live = true;
      const m = new Metrics({ processMetrics: false });
      const s = await startMetricsServer({ metrics: m, host: '127.0.0.1', port: 0, isReady: () => true, isLive: () => live });
      assert.equal((await http(s.port, '/livez')).status, 200);
      live = false;
      assert.equal((await http(s.port, '/livez')).status, 503);
      await assert.rejects(
        startMetricsServer({ metrics: m, host: '127.0.0.1', port: s.port, isReady: () => true }),
        /metrics endpoint: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
      );
      await Promise.all([s.close(), s.close()]);
      await s.close();
    });
  });

  describe('families and labels', () => {
    it('exports every family with the florence2_ prefix', async () => {
      const text = await metrics.metricsText();
      const types = Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
      const want: Record<string, string> = {
        florence2_requests_total: 'counter',
        florence2_request_duration_seconds: 'histogram',
        florence2_queue_wait_seconds: 'histogram',
        florence2_stage_duration_seconds: 'histogram',
        florence2_generated_tokens_total: 'counter',
        florence2_decoder_transfer_bytes_total: 'counter',
        florence2_prompt_tokens_total: 'counter',
        florence2_inflight_requests: 'gauge',
        florence2_queued_requests: 'gauge',
        florence2_worker_busy_ratio: 'gauge',
        florence2_worker_restarts_total: 'counter',
        florence2_workers: 'gauge',
        florence2_model_info: 'gauge',
        // prom-client's Node process metrics, under their standard names
        process_cpu_seconds_total: 'counter',
        process_cpu_user_seconds_total: 'counter',
        process_resident_memory_bytes: 'gauge',
        nodejs_heap_size_used_bytes: 'gauge',
        nodejs_eventloop_lag_seconds: 'gauge',
      };
      for (const [name, type] of Object.entries(want)) assert.equal(types[name], type, name);
      for (const name of Object.keys(types)) assert.match(name, /^(florence2_|process_|nodejs_)/, name);
      for (const name of Object.keys(types)) assert.doesNotMatch(name, /^florence2_(process|nodejs)_/, name);
    });

    it('records requests by task and code, and their latency by task', async () => {
      metrics.recordRequest('<OD>', 'OK', 0.2);
      metrics.recordRequest('<OD>', 'OK', 3);
      metrics.recordRequest('<OCR_WITH_REGION>', 'INVALID_ARGUMENT', 0.001);
      const s = await scrape();
      assert.equal(valueOf(s, 'florence2_requests_total', { task: 'od', code: 'OK' }), 2);
      assert.equal(valueOf(s, 'florence2_requests_total', { task: 'ocr_with_region', code: 'INVALID_ARGUMENT' }), 1);
      assert.equal(valueOf(s, 'florence2_request_duration_seconds_count', { task: 'od' }), 2);
      assert.equal(valueOf(s, 'florence2_request_duration_seconds_sum', { task: 'od' }), 3.2);
      assert.equal(valueOf(s, 'florence2_request_duration_seconds_bucket', { task: 'od', le: '0.25' }), 1);
      assert.equal(valueOf(s, 'florence2_request_duration_seconds_bucket', { task: 'od', le: '5' }), 2);
      // Buckets reach from 5 ms to 120 s.
      const les = s.filter((x) => x.name === 'florence2_request_duration_seconds_bucket' && x.labels.task === 'od').map((x) => x.labels.le);
      assert.equal(les[0], '0.005');
      assert.deepEqual(les.slice(-2), ['120', '+Inf']);
    });

    it('bounds the task and code labels', async () => {
      metrics.recordRequest('<NOT_A_TASK>', 'OK', 0.1);
      metrics.recordRequest('<script>alert(1)</script>', 'I_AM_A_TEAPOT', 0.1);
      metrics.recordTokens('whatever', 3, 4);
      const s = await scrape();
      assert.equal(valueOf(s, 'florence2_requests_total', { task: 'unknown', code: 'OK' }), 1);
      assert.equal(valueOf(s, 'florence2_requests_total', { task: 'unknown', code: 'UNKNOWN' }), 1);
      const allowed = new Set([...TASK_LABELS, 'unknown']);
      for (const x of s.filter((x) => 'task' in x.labels)) assert.ok(allowed.has(x.labels.task), x.labels.task);
    });

    it('taskLabel and codeLabel', () => {
      assert.equal(taskLabel('<OD>'), 'od');
      assert.equal(taskLabel('OD'), 'od');
      assert.equal(taskLabel('od'), 'od');
      assert.equal(taskLabel('<CAPTION_TO_PHRASE_GROUNDING>'), 'caption_to_phrase_grounding');
      assert.equal(taskLabel('<od'), 'unknown');
      assert.equal(taskLabel(''), 'unknown');
      assert.equal(TASK_LABELS.length, TASK_TOKENS.length);
      for (const l of TASK_LABELS) assert.match(l, /^[a-z_]+$/);
      assert.equal(codeLabel('resource_exhausted'), 'RESOURCE_EXHAUSTED');
      assert.equal(codeLabel('14'), 'UNKNOWN');
    });

    it('records queue wait, stages (decoder → decode) and tokens', async () => {
      metrics.recordQueueWait('cpu:1', 0.05);
      metrics.recordQueueWait('cpu:1', Number.NaN); // ignored, never throws
      metrics.recordStages({ preprocess: 10, vision: 200, encoder: 30, decoder: 400, postprocess: 1 });
      metrics.recordTokens('<CAPTION>', 7, 20);
      metrics.recordTokens('<CAPTION>', 7, 5);
      metrics.recordTokens('<CAPTION>', -1, Number.POSITIVE_INFINITY); // ignored
      const s = await scrape();
      assert.equal(valueOf(s, 'florence2_queue_wait_seconds_count', { device: 'cpu:1' }), 1);
      assert.equal(valueOf(s, 'florence2_queue_wait_seconds_sum', { device: 'cpu:1' }), 0.05);
      for (const [stage, sec] of [
        ['preprocess', 0.01],
        ['vision', 0.2],
        ['encoder', 0.03],
        ['decode', 0.4],
        ['postprocess', 0.001],
      ] as const) {
        assert.equal(valueOf(s, 'florence2_stage_duration_seconds_sum', { stage }), sec, stage);
      }
      assert.deepEqual(
        [...new Set(s.filter((x) => x.name.startsWith('florence2_stage_duration_seconds')).map((x) => x.labels.stage))].sort(),
        ['decode', 'encoder', 'postprocess', 'preprocess', 'vision'],
      );
      assert.equal(valueOf(s, 'florence2_prompt_tokens_total', { task: 'caption' }), 14);
      assert.equal(valueOf(s, 'florence2_generated_tokens_total', { task: 'caption' }), 25);
    });

    it('reads the device gauges from the source at scrape time', async () => {
      devices = [
        { device: 'cuda:0', inFlight: 2, queued: 5, busyRatio: 0.75, workers: 2 },
        { device: 'cuda:1', inFlight: 0, queued: 0, busyRatio: 1.5, workers: 1 },
      ];
      let s = await scrape();
      assert.equal(valueOf(s, 'florence2_inflight_requests', { device: 'cuda:0' }), 2);
      assert.equal(valueOf(s, 'florence2_queued_requests', { device: 'cuda:0' }), 5);
      assert.equal(valueOf(s, 'florence2_worker_busy_ratio', { device: 'cuda:0' }), 0.75);
      assert.equal(valueOf(s, 'florence2_worker_busy_ratio', { device: 'cuda:1' }), 1); // clamped to 0..1
      assert.equal(valueOf(s, 'florence2_workers', { device: 'cuda:0' }), 2);
      // Restarts are exported as 0 for each device before the first one.
      assert.equal(valueOf(s, 'florence2_worker_restarts_total', { device: 'cuda:1' }), 0);

      metrics.workerRestarted('cuda:1');
      devices = [{ device: 'cuda:1', inFlight: 1, queued: 0, busyRatio: 0.5, workers: 1 }];
      s = await scrape();
      assert.equal(valueOf(s, 'florence2_inflight_requests', { device: 'cuda:1' }), 1);
      assert.equal(valueOf(s, 'florence2_inflight_requests', { device: 'cuda:0' }), undefined); // gone from the source, gone from the gauge
      assert.equal(valueOf(s, 'florence2_worker_restarts_total', { device: 'cuda:1' }), 1);
    });

    it('a throwing source empties the device gauges instead of failing the scrape', async () => {
      metrics.setDeviceGaugesSource(() => {
        throw new Error('scheduler gone');
      });
      try {
        const s = await scrape();
        assert.equal(s.filter((x) => x.name === 'florence2_inflight_requests').length, 0);
      } finally {
        metrics.setDeviceGaugesSource(() => devices);
      }
    });

    it('model info is one series set to 1', async () => {
      metrics.setModelInfo({ model: 'old', dtype: 'fp32', serverVersion: '0.0.1' });
      metrics.setModelInfo({ model: 'Florence-2-base', dtype: 'fp16', serverVersion: '0.1.0' });
      const s = await scrape();
      const info = s.filter((x) => x.name === 'florence2_model_info');
      assert.deepEqual(info, [
        { name: 'florence2_model_info', labels: { model: 'Florence-2-base', dtype: 'fp16', server_version: '0.1.0' }, value: 1 },
      ]);
    });

    it('each Metrics has its own registry (no duplicate-registration errors)', async () => {
      const a = new Metrics({ processMetrics: false });
      const b = new Metrics({ processMetrics: false });
      a.recordRequest('<OD>', 'OK', 1);
      assert.match(await a.metricsText(), /florence2_requests_total\{task="od",code="OK"\} 1/);
      assert.doesNotMatch(await b.metricsText(), /florence2_requests_total\{/);
      assert.doesNotMatch(await b.metricsText(), /^(process|nodejs)_/m);
    });
  });
});
