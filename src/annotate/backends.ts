/**
 * Annotation backends: in process over a loaded {@link Florence2} model, or (later) a florence2
 * gRPC server. The annotator only sees {@link AnnotationBackend}.
 */
import { DEFAULT_MODEL, NetworkError, OfflineError, repoId, resolveModel } from '../hub';
import { Florence2Client } from 'florence2-client';
import { RemoteBackend } from './remote-backend';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Florence2, GenerationStopped, type GenerationOverrides, type LoadOptions, type RunRequest } from '../index';
import type { AnnotationBackend, BackendRequest, BackendResult, BackendRunOptions } from './types';
import type { DtypeChoice } from '../runtime/model-files';

/** Options of the in-process backend. */
export interface EmbeddedBackendOptions {
  /** Generation settings for every request (beams, max new tokens, ...); default the model's. */
  generation?: GenerationOverrides;
  /** Requests per model batch (default 4). */
  batchSize?: number;
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));

/**
 * Runs requests on a model loaded in this process. A call is one `runBatch`; when the batch fails
 * (one undecodable image fails the whole batch) its requests are rerun one by one, so only the bad
 * image's requests get an error.
 */
export class EmbeddedBackend implements AnnotationBackend {
  readonly preferredBatchSize: number;
  // Two batches in flight: while one runs in onnxruntime's threads, the next is decoded and resized.
  readonly preferredConcurrency = 2;

  constructor(
    readonly model: Florence2,
    private readonly options: EmbeddedBackendOptions = {},
    private readonly owned = false,
  ) {
    this.preferredBatchSize = options.batchSize ?? 4;
  }

  /** Loads the model folder and wraps it; {@link close} releases it. */
  static async load(dir: string, options: EmbeddedBackendOptions & { load?: LoadOptions } = {}): Promise<EmbeddedBackend> {
    const model = await Florence2.load(dir, options.load ?? {});
    return new EmbeddedBackend(model, options, true);
  }

  async run(requests: readonly BackendRequest[], options: BackendRunOptions = {}): Promise<Array<BackendResult | Error>> {
    const signal = options.signal;
    const runOptions = { generation: this.options.generation, shouldStop: () => signal?.aborted === true };
    const toResult = (r: { result: BackendResult['result']; imageSize: BackendResult['imageSize'] }): BackendResult => ({
      result: r.result,
      imageSize: r.imageSize,
    });
    const reqs: RunRequest[] = requests.map((r) => ({ image: r.image, task: r.task, text: r.text, region: r.region }));
    try {
      return (await this.model.runBatch(reqs, runOptions)).map(toResult);
    } catch (err) {
      if (requests.length === 1 || err instanceof GenerationStopped) return requests.map(() => asError(err));
      const out: Array<BackendResult | Error> = [];
      for (const r of reqs) out.push(await this.model.run(r, runOptions).then(toResult, asError));
      return out;
    }
  }

  async close(): Promise<void> {
    if (this.owned) await this.model.release();
  }
}

/** The server at `address` cannot be reached. */
export class RemoteBackendUnavailable extends Error {
  constructor(
    readonly address: string,
    reason: string,
  ) {
    super(`cannot reach the florence2 server at ${address}: ${reason}`);
    this.name = 'RemoteBackendUnavailable';
  }
}

/** Options of a backend on a florence2 server. */
export interface RemoteBackendOptions {
  generation?: GenerationOverrides;
  /** Bearer token for a server with `--auth-tokens-file`. */
  token?: string;
  /** Requests kept in flight on the server (its per-device queues keep its workers busy). */
  concurrency?: number;
}

/**
 * A backend on a florence2 server at `HOST:PORT`. The single place to wire in the gRPC client:
 * return an {@link AnnotationBackend} whose `run` sends each request (e.g. over the client's
 * `Stream`) and maps each answer to {@link BackendResult} (the same result shapes as
 * `Florence2.run`), a per-request failure to an `Error` entry.
 */
export async function createRemoteBackend(address: string, options: RemoteBackendOptions = {}): Promise<AnnotationBackend> {
  const client = new Florence2Client({ address, ...(options.token !== undefined ? { token: options.token } : {}) });
  try {
    await client.waitForReady(10_000);
  } catch (err) {
    client.close();
    throw new RemoteBackendUnavailable(address, err instanceof Error ? err.message : String(err));
  }
  return new RemoteBackend(client, options.generation, options.concurrency);
}

/** No usable model folder. */
export class ModelNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelNotFoundError';
  }
}

const isModelDir = (dir: string) =>
  existsSync(path.join(dir, 'config.json')) && existsSync(path.join(dir, 'onnx')) && statSync(dir).isDirectory();

/**
 * The model folder to load: `model` (else `$FLORENCE2_MODEL`, else the Hub's `base-ft`) when it is a
 * folder; otherwise a Hub model name (`base`, `base-ft`, `large`, `large-ft`, `owner/name`, or
 * Ultralytics' spelling `florence-2-base`), taken from the cache or downloaded (offline mode and an
 * unreachable Hub are reported as ModelNotFoundError with what to do instead).
 */
export async function resolveModelDir(
  model: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  dtype: DtypeChoice | 'auto' = 'auto',
): Promise<string> {
  const given = model || env.FLORENCE2_MODEL || DEFAULT_MODEL;
  const direct = path.resolve(cwd, given);
  if (existsSync(direct) && statSync(direct).isDirectory()) {
    if (!isModelDir(direct)) throw new ModelNotFoundError(`${direct} is not a Florence-2 model folder (config.json and onnx/ expected)`);
    return direct;
  }
  const name = /^florence-2-/i.test(given) ? given.slice('florence-2-'.length).toLowerCase() : given;
  try {
    repoId(name);
  } catch {
    throw new ModelNotFoundError(
      `model ${JSON.stringify(given)} not found: not a folder, nor a Hub model (base, base-ft, large, large-ft or owner/name)`,
    );
  }
  try {
    return (await resolveModel({ name, env, dtype })).dir;
  } catch (err) {
    if (err instanceof OfflineError || err instanceof NetworkError) throw new ModelNotFoundError(`no model: ${err.message}`);
    throw err;
  }
}
