/**
 * The typed Florence-2 client: one promise method per task family, deadlines, TLS or insecure
 * channels, retries for UNAVAILABLE / RESOURCE_EXHAUSTED, the Stream as an async iterable, and
 * grpc.health.v1 checks over the same channel.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { loadFlorence2Package, PROTO_LOADER_OPTIONS } from './proto';
import type { Florence2Client as GeneratedClient } from './generated/florence2/v1/Florence2';
import type { ProtoGrpcType } from './generated/florence2';
import { CancelledError, Florence2Error } from './errors';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetries } from './retry';
import { runStream, type StreamItem, type StreamOptions, type StreamOutcome } from './stream';
import { injectTraceContext } from './trace-context';
import { balancingChannelOptions, type LoadBalancing } from './balancing';
import {
  captionDetail,
  detectKind,
  extrasOf,
  fromCaption,
  fromDetect,
  fromModelInfo,
  fromOcr,
  fromOpenVocabulary,
  fromPhraseGrounding,
  fromRegion,
  fromRunResponse,
  fromSegment,
  readImage,
  regionTask,
  requestExtras,
  segmentTarget,
  toOptions,
  toRegion,
  toRunRequest,
} from './convert';
import type {
  CallOptions,
  CaptionDetail,
  CaptionResult,
  DetectKind,
  DetectResult,
  HealthStatus,
  ImageInput,
  ModelInfo,
  OcrResult,
  OpenVocabularyResult,
  PhraseGroundingResult,
  RegionInput,
  RegionResult,
  RegionTask,
  RequestOptions,
  ResultOf,
  SegmentResult,
  SegmentTarget,
  TaskRequest,
} from './types';

/** Channel credentials: `'insecure'` (plain TCP), TLS material, or ready-made grpc-js credentials. */
export type CredentialsInput = 'insecure' | { rootCerts?: Buffer; privateKey?: Buffer; certChain?: Buffer } | grpc.ChannelCredentials;

/** How to reach and talk to a server. */
export interface Florence2ClientOptions {
  /**
   * `host:port`, or any grpc-js target: `dns:///name:port` (every address the name resolves to, e.g.
   * a Kubernetes headless Service), `ipv4:10.0.0.1:50051,10.0.0.2:50051` (a list).
   */
  address: string;
  /**
   * How calls spread over the servers the address resolves to: `round_robin` (each call to the next
   * connected server) or `pick_first` (one server). Default: `round_robin` for `dns:` targets and
   * address lists, `pick_first` for a plain `host:port`.
   */
  loadBalancing?: LoadBalancing;
  /**
   * Keepalive ping interval while calls are in flight, in ms (default 30000; 0 = none): a server
   * that vanished without closing the connection fails the calls on it as UNAVAILABLE (retried)
   * within this plus `keepaliveTimeoutMs`, instead of at their deadline.
   */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered before the connection is dropped (default 10000 ms). */
  keepaliveTimeoutMs?: number;
  /** Default `'insecure'`. TLS: `{ rootCerts }` for a private CA (omit for the system roots), plus `privateKey` and `certChain` for mutual TLS. */
  credentials?: CredentialsInput;
  /** Bearer token for a server with `--auth-tokens-file`: sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** Deadline of unary calls without their own `deadlineMs`; default none. */
  defaultDeadlineMs?: number;
  /** Retries after the first attempt for UNAVAILABLE and RESOURCE_EXHAUSTED (default 3; 0 = never). */
  maxRetries?: number;
  /** Backoff cap of the first retry, doubling per retry (default 100 ms). */
  retryBaseMs?: number;
  /** Largest backoff (default 5000 ms). */
  retryMaxBackoffMs?: number;
  /** Largest message sent or received (default 50 MiB, the server's default). */
  maxMessageBytes?: number;
  /** Extra grpc-js channel options (override the ones above, `grpc.service_config` included). */
  channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;

type Florence2Ctor = ProtoGrpcType['florence2']['v1']['Florence2'];

interface HealthCheckResponse {
  status: HealthStatus;
}
interface HealthStub extends grpc.Client {
  Check(
    request: { service: string },
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<HealthCheckResponse>,
  ): grpc.ClientUnaryCall;
}
type HealthCtor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => HealthStub;

// Loading the protos parses files: do it once per process.
let florence2Ctor: Florence2Ctor | null = null;
let healthCtor: HealthCtor | null = null;
function constructors(): { Florence2: Florence2Ctor; Health: HealthCtor } {
  if (!florence2Ctor) {
    // The server's loader and options: anything else would make the generated types lie.
    const pkg = grpc.loadPackageDefinition(loadFlorence2Package()) as unknown as ProtoGrpcType;
    florence2Ctor = pkg.florence2.v1.Florence2;
  }
  if (!healthCtor) {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, PROTO_LOADER_OPTIONS)) as unknown as {
      grpc: { health: { v1: { Health: HealthCtor } } };
    };
    healthCtor = pkg.grpc.health.v1.Health;
  }
  return { Florence2: florence2Ctor, Health: healthCtor };
}

function toCredentials(c: CredentialsInput | undefined): grpc.ChannelCredentials {
  if (c === undefined || c === 'insecure') return grpc.credentials.createInsecure();
  if (c instanceof grpc.ChannelCredentials) return c;
  return grpc.credentials.createSsl(c.rootCerts ?? null, c.privateKey ?? null, c.certChain ?? null);
}

function toMetadata(m: CallOptions['metadata']): grpc.Metadata {
  if (m instanceof grpc.Metadata) return m.clone();
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(m ?? {})) for (const one of Array.isArray(v) ? v : [v]) md.add(k, one);
  return md;
}

/** A unary RPC of the generated client, bound to its request. */
type Invoke<Res> = (metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

/**
 * A Florence-2 server connection. Methods reject with {@link Florence2Error} subclasses. One client
 * holds one channel; share it and {@link close} it when done.
 */
export class Florence2Client {
  /** The generated grpc-js client, for anything this wrapper does not cover. */
  readonly raw: GeneratedClient;
  private readonly health_: HealthStub;
  private readonly retry: RetryPolicy;
  private readonly defaultDeadlineMs: number | undefined;
  private readonly token: string | undefined;
  /** The load-balancing policy asked for, or the address's default (a `grpc.service_config` in `channelOptions` overrides both). */
  readonly loadBalancing: LoadBalancing;

  constructor(options: Florence2ClientOptions) {
    if (!options || typeof options.address !== 'string' || options.address === '')
      throw new TypeError('Florence2Client needs { address: "host:port" }');
    const { Florence2, Health } = constructors();
    const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const balancing = balancingChannelOptions(options.address, options);
    this.loadBalancing = balancing.policy;
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': maxBytes,
      'grpc.max_send_message_length': maxBytes,
      ...balancing.channelOptions,
      ...options.channelOptions,
    };
    this.raw = new Florence2(options.address, toCredentials(options.credentials), channelOptions);
    // Health rides the same channel: one connection, and health reflects the connection we use.
    this.health_ = new Health(options.address, grpc.credentials.createInsecure(), { channelOverride: this.raw.getChannel() });
    this.retry = {
      maxRetries: options.maxRetries ?? DEFAULT_RETRY_POLICY.maxRetries,
      baseMs: options.retryBaseMs ?? DEFAULT_RETRY_POLICY.baseMs,
      maxBackoffMs: options.retryMaxBackoffMs ?? DEFAULT_RETRY_POLICY.maxBackoffMs,
    };
    this.defaultDeadlineMs = options.defaultDeadlineMs;
    this.token = options.token;
  }

  /** A call's metadata, with the token when there is one and the caller's trace context (OpenTelemetry). */
  private metadataFor(m: CallOptions['metadata']): grpc.Metadata {
    const md = toMetadata(m);
    if (this.token !== undefined) md.set('authorization', `Bearer ${this.token}`);
    injectTraceContext(md);
    return md;
  }

  /** A caption at one of three detail levels (default brief). */
  async caption(image: ImageInput, options: RequestOptions & { detail?: CaptionDetail } = {}): Promise<CaptionResult> {
    const req = { image: { data: await readImage(image) }, detail: captionDetail(options.detail), options: toOptions(options) };
    return fromCaption(await this.unary((md, co, cb) => this.raw.Caption(req, md, co, cb), options), extrasOf(options));
  }

  /** Boxes without text input: objects (default), dense region captions, or region proposals. */
  async detect(image: ImageInput, options: RequestOptions & { kind?: DetectKind } = {}): Promise<DetectResult> {
    const req = { image: { data: await readImage(image) }, kind: detectKind(options.kind), options: toOptions(options) };
    return fromDetect(await this.unary((md, co, cb) => this.raw.Detect(req, md, co, cb), options), extrasOf(options));
  }

  /** Boxes (or polygons) for each of the given classes, labelled with the class asked for. */
  async detectOpenVocabulary(
    image: ImageInput,
    classes: readonly string[] | string,
    options: RequestOptions = {},
  ): Promise<OpenVocabularyResult> {
    const req = {
      image: { data: await readImage(image) },
      classes: typeof classes === 'string' ? [classes] : [...classes],
      options: toOptions(options),
    };
    return fromOpenVocabulary(await this.unary((md, co, cb) => this.raw.DetectOpenVocabulary(req, md, co, cb), options), extrasOf(options));
  }

  /** Boxes for the phrases of a caption, labelled with the phrase. */
  async groundPhrases(image: ImageInput, caption: string, options: RequestOptions = {}): Promise<PhraseGroundingResult> {
    const req = { image: { data: await readImage(image) }, caption, options: toOptions(options) };
    return fromPhraseGrounding(await this.unary((md, co, cb) => this.raw.GroundPhrases(req, md, co, cb), options), extrasOf(options));
  }

  /** Polygons for a referring expression (`{ referringExpression }`) or a region (`{ region }`). */
  async segment(image: ImageInput, target: SegmentTarget, options: RequestOptions = {}): Promise<SegmentResult> {
    const req = { image: { data: await readImage(image) }, ...segmentTarget(target), options: toOptions(options) };
    return fromSegment(await this.unary((md, co, cb) => this.raw.Segment(req, md, co, cb), options), extrasOf(options));
  }

  /** The text in the image, or (withRegions) its lines with quadrilaterals. */
  async ocr(image: ImageInput, options: RequestOptions & { withRegions?: boolean } = {}): Promise<OcrResult> {
    const req = { image: { data: await readImage(image) }, with_regions: options.withRegions ?? false, options: toOptions(options) };
    return fromOcr(await this.unary((md, co, cb) => this.raw.Ocr(req, md, co, cb), options), extrasOf(options));
  }

  /** The category (default), a description, or the text of one region. */
  async describeRegion(
    image: ImageInput,
    region: RegionInput,
    task: RegionTask = 'category',
    options: RequestOptions = {},
  ): Promise<RegionResult> {
    const req = { image: { data: await readImage(image) }, region: toRegion(region), task: regionTask(task), options: toOptions(options) };
    return fromRegion(await this.unary((md, co, cb) => this.raw.DescribeRegion(req, md, co, cb), options), extrasOf(options));
  }

  /** Any task through the generic Run RPC; the result type follows the request's `family`. */
  async run<R extends TaskRequest>(request: R, options: CallOptions = {}): Promise<ResultOf<R['family']>> {
    const req = await toRunRequest(request);
    const res = fromRunResponse(await this.unary((md, co, cb) => this.raw.Run(req, md, co, cb), options), requestExtras(request));
    return res as ResultOf<R['family']>;
  }

  /** The served model, its devices, limits and versions. */
  async modelInfo(options: CallOptions = {}): Promise<ModelInfo> {
    return fromModelInfo(await this.unary((md, co, cb) => this.raw.GetModelInfo({}, md, co, cb), options));
  }

  /**
   * grpc.health.v1 Check: `''` (default) for the whole server, `'florence2.v1.Florence2'` for the
   * service. A server that is not reachable rejects with UnavailableError after the retries.
   */
  async health(service = '', options: CallOptions = {}): Promise<HealthStatus> {
    const res = await this.unary<HealthCheckResponse>((md, co, cb) => this.health_.Check({ service }, md, co, cb), options);
    return res.status;
  }

  /**
   * Many requests on one call. Yields `{ ok: true, id, result }` or `{ ok: false, id, error }` per request as answers
   * arrive (not in request order). Never retried; `deadlineMs` covers the whole stream (the client
   * default does not apply). If the call fails, unanswered ids get the call's error, then the
   * iteration throws it.
   */
  stream(requests: AsyncIterable<StreamItem> | Iterable<StreamItem>, options: StreamOptions = {}): AsyncIterable<StreamOutcome> {
    return runStream((md, co) => this.raw.Stream(md, co), requests, options, this.metadataFor(options.metadata), toRunRequest);
  }

  /** Waits until the channel is connected (or the deadline passes, rejecting with UnavailableError). */
  waitForReady(deadlineMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.raw.waitForReady(Date.now() + deadlineMs, (err) =>
        err ? reject(Florence2Error.fromStatus({ code: grpc.status.UNAVAILABLE, details: err.message })) : resolve(),
      ),
    );
  }

  /** Closes the channel; calls in progress fail, later calls are refused. */
  close(): void {
    this.health_.close();
    this.raw.close();
  }

  /** One unary call with the deadline, cancellation and retry policy of `options`. */
  private unary<Res>(invoke: Invoke<Res>, options: CallOptions): Promise<Res> {
    const deadlineMs = options.deadlineMs ?? this.defaultDeadlineMs;
    // One absolute deadline for all attempts: retries never extend the caller's budget.
    const deadline = deadlineMs === undefined || !Number.isFinite(deadlineMs) ? undefined : Date.now() + deadlineMs;
    const policy = options.maxRetries === undefined ? this.retry : { ...this.retry, maxRetries: options.maxRetries };
    const { signal } = options;
    return withRetries(
      (attempt) =>
        new Promise<Res>((resolve, reject) => {
          if (signal?.aborted) return reject(new CancelledError('cancelled by the caller', { attempts: attempt }));
          const onAbort = () => call.cancel();
          const call = invoke(this.metadataFor(options.metadata), deadline === undefined ? {} : { deadline }, (err, res) => {
            signal?.removeEventListener('abort', onAbort);
            if (err) reject(err);
            else resolve(res as Res);
          });
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      { policy, deadline, signal },
    );
  }
}
