/**
 * Composition root: config → metrics → device pools → gRPC server (health NOT_SERVING) → warm-up →
 * SERVING. Shutdown reverses it: NOT_SERVING, refuse new work, drain in-flight work within the
 * grace period, close the transport, the pools and the metrics endpoint.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import * as protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { batchingFor, type Config } from '../config/schema';
import type { Logger } from '../common/logger';
import { Metrics } from '../metrics/registry';
import { startMetricsServer } from '../metrics/http';
import { DevicePool } from './pools';
import { Scheduler } from './scheduler';
import { CancelSlots } from './cancel-slots';
import { createService } from './service';
import { PROTO_LOADER_OPTIONS, loadFlorence2Package, protoDir } from '../common/proto';
import { readModelConfig } from '../florence/model-config';
import { MODULES, moduleFile } from '../runtime/model-files';
import { TASK_TOKENS } from '../florence/tasks';
import type { ModelInfo } from '../generated/florence2/v1/ModelInfo';

export const SERVICE_NAME = 'florence2.v1.Florence2';

export interface RunningServer {
  /** The bound gRPC port. */
  port: number;
  /** The bound metrics port, or null when metrics are disabled. */
  metricsPort: number | null;
  /** Graceful shutdown; resolves when everything is closed. Idempotent. */
  shutdown(reason: string): Promise<void>;
}

function packageVersion(pkg: string, fallback = 'unknown'): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return fallback;
  }
}

const SERVER_VERSION = (JSON.parse(readFileSync(join(protoDir(), '..', 'package.json'), 'utf8')) as { version: string }).version;

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  // 1) what the model is (read on the main thread without onnxruntime)
  const model = readModelConfig(config.model);
  const files = Object.fromEntries(MODULES.map((m) => [m, moduleFile(config.model, m, config.dtype).split('/').pop()!]));
  const metrics = new Metrics();
  metrics.setModelInfo({
    model: model.name || config.model,
    dtype: MODULES.map((m) => `${m}=${config.dtype[m]}`).join(','),
    serverVersion: SERVER_VERSION,
  });

  // 2) device pools and the scheduler (workers load and warm up in start())
  const maxInFlight = config.maxInFlightPerDevice > 0 ? config.maxInFlightPerDevice : config.workersPerDevice;
  const batching = new Map(config.devices.map((d) => [d.name, batchingFor(config, d)]));
  const cancelSlots = CancelSlots.forDevices(
    config.devices.length,
    maxInFlight,
    Math.max(...[...batching.values()].map((b) => b.maxBatchRows)),
  );
  const pools = config.devices.map(
    (d) =>
      new DevicePool({
        init: {
          modelDir: config.model,
          device: d.name,
          provider: d.provider,
          deviceId: d.deviceId,
          allowCpuFallback: config.allowCpuFallback,
          intraOpNumThreads: config.intraOpThreads,
          dtype: config.dtype,
          resample: config.resample,
          maxPixels: config.maxImagePixels,
          maxVisionBatch: batching.get(d.name)!.maxVisionBatch,
          cancelFlags: cancelSlots.buffer,
          logLevel: config.logLevel,
          testHooks: config.testHooks,
        },
        logger,
        workers: config.workersPerDevice,
        onWorkerRestart: (device) => {
          metrics.workerRestarted(device);
          logger.warn('worker died and was replaced', { device });
        },
      }),
  );
  const scheduler = new Scheduler({
    pools,
    cancelSlots,
    maxInFlightPerDevice: maxInFlight,
    maxQueuePerDevice: config.maxQueuePerDevice,
    batching: (device) => batching.get(device)!,
    defaultNumBeams: model.generation.numBeams,
    onBatchStart: (device, shape) => metrics.recordBatch(device, shape.requests, shape.rows),
    onBatchEnd: (device, stats) => {
      metrics.recordStages(stats.shared);
      metrics.recordDecoderSteps(device, stats.steps, stats.rowSteps, stats.decodeMs, stats.decoderRunMs);
    },
    onStoppedInBatch: (requestId, device, message) => logger.info('running request stopped in its batch', { requestId, device, message }),
  });
  metrics.setDeviceGaugesSource(() => scheduler.stats());

  // 3) transport: health says NOT_SERVING until every worker is warm
  let serving = false;
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  const setHealth = (s: 'SERVING' | 'NOT_SERVING') => {
    health.setStatus('', s);
    health.setStatus(SERVICE_NAME, s);
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
  });
  const pkg = loadFlorence2Package();
  const florence = grpc.loadPackageDefinition(pkg) as unknown as { florence2: { v1: { Florence2: grpc.ServiceClientConstructor } } };
  const modelInfo = (): ModelInfo => ({
    model: model.name,
    path: config.model,
    files,
    devices: config.devices.map((d) => {
      const b = batching.get(d.name)!;
      return {
        name: d.name,
        provider: d.provider,
        workers: config.workersPerDevice,
        max_batch_rows: b.maxBatchRows,
        max_queue_delay_ms: b.maxQueueDelayMs,
        max_vision_batch: b.maxVisionBatch,
      };
    }),
    limits: {
      max_image_pixels: config.maxImagePixels,
      max_message_bytes: config.maxMessageBytes,
      max_num_beams: config.maxNumBeams,
      max_new_tokens: config.maxNewTokens,
      max_text_chars: config.maxTextChars,
      max_classes: config.maxClasses,
    },
    default_num_beams: model.generation.numBeams,
    default_max_new_tokens: Math.min(config.maxNewTokens, model.generation.maxNewTokens),
    tasks: [...TASK_TOKENS],
    server_version: SERVER_VERSION,
    onnxruntime_version: packageVersion('onnxruntime-node'),
    node_version: process.versions.node,
  });
  server.addService(
    florence.florence2.v1.Florence2.service,
    createService({
      scheduler,
      metrics,
      logger,
      isServing: () => serving,
      modelInfo,
      testHooks: config.testHooks,
      limits: {
        maxImagePixels: config.maxImagePixels,
        maxNumBeams: config.maxNumBeams,
        maxNewTokens: config.maxNewTokens,
        maxTextChars: config.maxTextChars,
        maxClasses: config.maxClasses,
      },
    }),
  );
  health.addToServer(server);
  new ReflectionService({ ...pkg, ...protoLoader.loadSync(healthProtoPath, PROTO_LOADER_OPTIONS) }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const metricsServer =
    config.metricsPort >= 0
      ? await startMetricsServer({ metrics, host: config.metricsHost, port: config.metricsPort, isReady: () => serving })
      : null;
  logger.info('listening', {
    port,
    metricsPort: metricsServer?.port ?? null,
    model: config.model,
    devices: config.devices.map((d) => d.name),
  });

  let shuttingDown: Promise<void> | null = null;
  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info('shutting down', { reason, graceMs: config.shutdownGraceMs });
      serving = false;
      setHealth('NOT_SERVING');
      // In-flight and queued work finishes (within the grace period); new work gets UNAVAILABLE.
      await scheduler.drain(config.shutdownGraceMs);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await scheduler.close();
      await metricsServer?.close();
      logger.info('stopped', { reason });
    })();
    return shuttingDown;
  };

  // 4) load and warm every worker, then serve
  try {
    await scheduler.start();
  } catch (err) {
    logger.error('workers failed to start', { err });
    await shutdown('startup failed').catch(() => {});
    throw err;
  }
  serving = true;
  setHealth('SERVING');
  logger.info('serving', { port });
  return { port, metricsPort: metricsServer?.port ?? null, shutdown };
}
