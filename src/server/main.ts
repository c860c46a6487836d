/**
 * Composition root: config → metrics → device pools → gRPC server (health NOT_SERVING) → warm-up →
 * SERVING. Shutdown reverses it: NOT_SERVING, no new connection (GOAWAY on the open ones), refuse
 * new work, drain in-flight work within the grace period, close the transport once its calls end,
 * the pools and the metrics endpoint.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import * as protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { batchingFor, type Config } from '../config/schema';
import { type Logger, resolveLogFormat } from '../common/logger';
import { startTracing } from '../common/tracing';
import { Metrics } from '../metrics/registry';
import { startMetricsServer } from '../metrics/http';
import { DevicePool } from './pools';
import { Scheduler } from './scheduler';
import { CancelSlots } from './cancel-slots';
import { createService } from './service';
import { PROTO_LOADER_OPTIONS, loadFlorence2Package } from 'florence2-client/proto';
import { serverPackageVersion } from '../common/version';
import { generatedFileDescriptorProtos, generatedRegistry, readGeneratedFile } from './descriptors';
import { startHttpApi } from './http-api';
import { JsonCodec } from './json';
import { readModelConfig } from '../florence/model-config';
import { snapshotOf } from '../hub/cache';
import { ByteBudget } from './budget';
import { ClientLimits } from './client-limits';
import { TokenAuth } from './auth';
import { TlsFiles } from './tls';
import { guardInterceptor } from './guard';
import { installGuardedInflate } from './inflate-guard';
import { guardedService } from './wire-guard';
import { MODULES, moduleFile, type DtypeByModule } from '../runtime/model-files';
import { folderDtypes } from '../hub/dtypes';
import { TASK_TOKENS } from 'florence2-client/catalogue';
import type { ModelInfo } from 'florence2-client/generated/florence2/v1/ModelInfo';

export const SERVICE_NAME = 'florence2.v1.Florence2';

/** Longest `request_id` of a Stream request, in UTF-8 bytes: ids are for correlation, not payload. */
export const MAX_REQUEST_ID_BYTES = 256;

/** A unary call must deliver its message this soon after its read starts, or it is ended (a slow sender holds budget). */
const RECEIVE_TIMEOUT_MS = 60_000;

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

export interface RunningServer {
  /** The bound gRPC port. */
  port: number;
  /** The bound metrics port, or null when metrics are disabled. */
  metricsPort: number | null;
  /** The bound HTTP/JSON port, or null when the HTTP/JSON API is off. */
  httpPort: number | null;
  /**
   * Graceful shutdown; resolves when everything is closed. Idempotent: a later call returns the same
   * promise. With `force` (a third stop signal) it ends a drain under way at once: every request still
   * queued or running is answered UNAVAILABLE, then the transport and the pools close as usual.
   */
  shutdown(reason: string, options?: { force?: boolean }): Promise<void>;
  /** Re-reads what may change while serving (SIGHUP) and names what it reloaded; never stops the server. */
  reload(): Promise<{ reloaded: string[] }>;
}

/**
 * `pkg` with buf's protoc-equivalent descriptors in place of protobufjs's: @grpc/reflection reads
 * `fileDescriptorProtos` from each entry (services have none), and keeps the first file of a name.
 */
/** A message or enum entry (these carry descriptors), not a service (a map of methods). */
const isTypeDefinition = (
  def: protoLoader.AnyDefinition,
): def is protoLoader.MessageTypeDefinition<object, object> | protoLoader.EnumTypeDefinition => typeof def.format === 'string';

function withProtocDescriptors(pkg: protoLoader.PackageDefinition, fileDescriptorProtos: Buffer[]): protoLoader.PackageDefinition {
  const out: protoLoader.PackageDefinition = {};
  for (const [name, def] of Object.entries(pkg)) out[name] = isTypeDefinition(def) ? { ...def, fileDescriptorProtos } : def;
  return out;
}

function packageVersion(pkg: string, fallback = 'unknown'): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return fallback;
  }
}

const SERVER_VERSION = serverPackageVersion();

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  // 1) what the model is (read on the main thread without onnxruntime)
  const model = readModelConfig(config.model);
  // `auto` resolves per device kind against the folder's files
  const dtypes = new Map(config.devices.map((d) => [d.name, folderDtypes(config.model, config.dtype, d.provider)]));
  for (const d of config.devices)
    logger.info('model variants', { device: d.name, setting: config.dtype === 'auto' ? 'auto' : 'given', ...dtypes.get(d.name) });
  const firstDtype = dtypes.get(config.devices[0].name)!;
  const files = Object.fromEntries(MODULES.map((m) => [m, moduleFile(config.model, m, firstDtype).split('/').pop()!]));
  const metrics = new Metrics();
  // Tracing first, so nothing of a request runs before its tracer; off unless OTEL_* or --tracing ask.
  const tracing = startTracing(config.tracing, { version: SERVER_VERSION });
  logger.info(tracing.on ? 'tracing on' : 'tracing off', { why: tracing.why, ...(tracing.protocol ? { protocol: tracing.protocol } : {}) });
  const logFormat = resolveLogFormat(config.logFormat);
  const dtypeLabel = (t: DtypeByModule) => MODULES.map((m) => `${m}=${t[m]}`).join(',');
  metrics.setModelInfo({
    model: model.name || config.model,
    dtype: [...new Set([...dtypes.values()].map(dtypeLabel))].join(';'),
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
          cpuMemoryArena: config.cpuMemoryArena,
          dtype: dtypes.get(d.name)!,
          cpuFallbackDtype: folderDtypes(config.model, config.dtype, 'cpu'),
          resample: config.resample,
          maxPixels: config.maxImagePixels,
          maxVisionBatch: batching.get(d.name)!.maxVisionBatch,
          cancelFlags: cancelSlots.buffer,
          logLevel: config.logLevel,
          logFormat: logFormat.format,
          logColor: logFormat.colorize,
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
      metrics.recordDecoderTransfers(device, stats.decoderBytes);
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
  // 3a) what guards every call: the memory budget, per-client bounds, credentials (guard.ts)
  const budget = new ByteBudget(config.requestMemoryBytes, Math.max(config.maxMessageBytes, Math.floor(config.requestMemoryBytes / 2)));
  metrics.setBudgetSource(() => budget.stats());
  const clientLimits = new ClientLimits({
    maxInFlight: config.maxInflightPerClient,
    ratePerSecond: config.rateLimitPerClient,
    burst: config.rateLimitBurst,
  });
  const auth = config.authTokensFile ? new TokenAuth(config.authTokensFile) : null;
  const tls =
    config.tlsCert && config.tlsKey
      ? new TlsFiles({
          certFile: config.tlsCert,
          keyFile: config.tlsKey,
          clientCaFile: config.tlsClientCa,
          onReload: () => logger.info('TLS material reloaded', { cert: config.tlsCert }),
          onError: (err) => logger.error('TLS material changed but cannot be used; the previous material stays', { err }),
        })
      : null;
  if (!installGuardedInflate())
    logger.warn(
      'this grpc-js does not have the decompression hook expected; compressed requests are inflated whole before their scan (the memory budget still bounds them)',
    );
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
    // Aged connections get GOAWAY, so balancing clients reconnect and resolve again (new replicas get load).
    ...(config.maxConnectionAgeMs > 0 ? { 'grpc.max_connection_age_ms': config.maxConnectionAgeMs } : {}),
    ...(config.maxConnectionAgeGraceMs > 0 ? { 'grpc.max_connection_age_grace_ms': config.maxConnectionAgeGraceMs } : {}),
    interceptors: [
      guardInterceptor({
        budget,
        maxMessageBytes: config.maxMessageBytes,
        clientLimits,
        auth: () => auth,
        receiveTimeoutMs: RECEIVE_TIMEOUT_MS,
        onRefused: ({ path, client, reason, error }) => {
          metrics.recordRefused(reason);
          logger.info('call refused', { path, client, code: grpc.status[error.code], message: error.message });
        },
      }),
    ],
  });
  const pkg = loadFlorence2Package();
  const florence = grpc.loadPackageDefinition(pkg) as unknown as { florence2: { v1: { Florence2: grpc.ServiceClientConstructor } } };
  const snapshot = snapshotOf(config.model);
  /** Aborted when shutdown starts: open Streams end UNAVAILABLE once their requests are answered. */
  const stopping = new AbortController();
  const modelInfo = (): ModelInfo => ({
    model: model.name,
    revision: snapshot ? `${snapshot.repo}@${snapshot.commit}` : 'local',
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
  const definition = guardedService(SERVICE_NAME, florence.florence2.v1.Florence2.service, {
    maxRepeated: config.maxClasses,
    // UTF-8 needs at most 4 bytes a character.
    maxStringBytes: config.maxTextChars * 4,
    maxRequestIdBytes: MAX_REQUEST_ID_BYTES,
  });
  const service = createService({
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
      maxRequestTokens: config.maxRequestTokens,
    },
    maxRequestMs: config.maxRequestMs,
    clientLimits,
    defaultNumBeams: model.generation.numBeams,
    shutdownSignal: stopping.signal,
  });
  server.addService(definition, service.handlers);
  health.addToServer(server);
  const reflection = config.reflection === 'on' || (config.reflection === 'auto' && auth === null);
  if (reflection)
    new ReflectionService({
      ...withProtocDescriptors(pkg, generatedFileDescriptorProtos('florence2')),
      ...withProtocDescriptors(protoLoader.loadSync(healthProtoPath, PROTO_LOADER_OPTIONS), generatedFileDescriptorProtos('health')),
    }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, tls ? tls.credentials() : grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  if (!tls && !auth && !isLoopback(config.host))
    logger.warn('the gRPC port is open to the network without TLS or token auth; set --tls-cert/--tls-key and --auth-tokens-file', {
      host: config.host,
    });
  const httpApi =
    config.httpPort >= 0
      ? await startHttpApi({
          host: config.host,
          port: config.httpPort,
          maxBodyBytes: config.httpMaxBodyBytes,
          maxMessageBytes: config.maxMessageBytes,
          methods: service.unary,
          definition,
          codec: new JsonCodec(generatedRegistry('florence2'), SERVICE_NAME),
          openapi: readGeneratedFile('openapi.json'),
          budget,
          clientLimits,
          auth: () => auth,
          tls,
          receiveTimeoutMs: RECEIVE_TIMEOUT_MS,
          servicePath: `/${SERVICE_NAME}`,
          metrics,
          logger,
          onRefused: ({ path, client, reason, error }) => {
            metrics.recordRefused(reason);
            logger.info('call refused', { path, client, code: grpc.status[error.code], message: error.message, transport: 'http' });
          },
        })
      : null;
  const metricsServer =
    config.metricsPort >= 0
      ? await startMetricsServer({ metrics, host: config.metricsHost, port: config.metricsPort, isReady: () => serving })
      : null;
  logger.info('listening', {
    port,
    metricsPort: metricsServer?.port ?? null,
    httpPort: httpApi?.port ?? null,
    model: config.model,
    devices: config.devices.map((d) => d.name),
    tls: tls ? (tls.mutual ? 'mtls' : 'tls') : 'off',
    auth: auth ? 'tokens' : 'off',
    reflection,
    maxConnectionAgeMs: config.maxConnectionAgeMs > 0 ? config.maxConnectionAgeMs : null,
  });

  let shuttingDown: Promise<void> | null = null;
  let forced = false;
  /** Set while the transport closes gracefully: closes it forcibly at once (a forced stop). */
  let closeTransportNow: (() => void) | null = null;
  const shutdown = (reason: string, options: { force?: boolean } = {}): Promise<void> => {
    // How long open calls (a Stream whose client keeps it open) may hold the transport once every
    // request is answered; then it is closed forcibly, as a last resort.
    const TRANSPORT_CLOSE_MS = 2000;
    shuttingDown ??= (async () => {
      logger.info('shutting down', { reason, graceMs: config.shutdownGraceMs });
      serving = false;
      setHealth('NOT_SERVING');
      stopping.abort();
      // Take no new connection and send GOAWAY on the open ones now, not after the drain: a client
      // balancing over replicas (round_robin) sends calls only to connected servers, so its next
      // calls go to the others at once instead of each being refused here and retried. The calls on
      // a connection run on, and their answers go out (the close is graceful); health watchers
      // already connected see NOT_SERVING.
      const transportClosed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      // New work gets UNAVAILABLE; queued and running work finishes within the grace period, and what
      // is left then is answered UNAVAILABLE (clients retry it elsewhere), running requests stopped
      // through their cancel slots. Ends early on a forced stop.
      const cut = await scheduler.drain(config.shutdownGraceMs);
      if (cut.running + cut.queued > 0)
        logger.warn('shutdown grace period ended; the requests left were answered UNAVAILABLE', {
          reason,
          graceMs: config.shutdownGraceMs,
          running: cut.running,
          queued: cut.queued,
        });
      // Every request is answered: the transport closes once the calls still on it end.
      await new Promise<void>((resolve) => {
        const since = Date.now();
        let done = false;
        const finish = (how: 'graceful' | 'forced') => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          closeTransportNow = null;
          if (how === 'forced') {
            logger.warn('transport closed forcibly', { reason, forced, afterMs: Date.now() - since });
            server.forceShutdown();
          }
          resolve();
        };
        const timer = setTimeout(() => finish('forced'), TRANSPORT_CLOSE_MS);
        closeTransportNow = () => finish('forced');
        void transportClosed.then(() => finish('graceful'));
      });
      await httpApi?.close(TRANSPORT_CLOSE_MS);
      // The pools wait for their running batches: stopped ones end at their next decoder step.
      await scheduler.close();
      await metricsServer?.close();
      tls?.close();
      // The spans of the last requests are exported before the process ends.
      await tracing.shutdown().catch((err: unknown) => logger.warn('traces could not be exported at shutdown', { err }));
      logger.info('stopped', { reason, forced });
    })();
    if (options.force && !forced) {
      forced = true;
      // Whatever is still queued or running is answered UNAVAILABLE now; the drain above then ends.
      const cut = scheduler.stopAll();
      logger.warn('forced stop: the requests left were answered UNAVAILABLE', { reason, running: cut.running, queued: cut.queued });
      closeTransportNow?.();
    }
    return shuttingDown;
  };
  const reload = async (): Promise<{ reloaded: string[] }> => {
    const reloaded: string[] = [];
    if (tls) {
      try {
        if (tls.reload()) reloaded.push('tls');
      } catch (err) {
        logger.error('TLS material cannot be reloaded; the previous material stays', { err });
      }
    }
    if (auth) {
      try {
        const tokens = auth.reload();
        logger.info('tokens file reloaded', { file: auth.file, tokens });
        reloaded.push('auth-tokens');
      } catch (err) {
        logger.error('the tokens file cannot be reloaded; the previous tokens stay', { err, file: auth.file });
      }
    }
    return { reloaded };
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
  return { port, metricsPort: metricsServer?.port ?? null, httpPort: httpApi?.port ?? null, shutdown, reload };
}
