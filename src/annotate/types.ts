/** Types shared by the auto-annotation modules. */
import type { ScoredPostProcessResult } from '../florence/postprocess';
import type { BoxTuple, ImageSize, PixelRegion } from '../florence/geometry';

export type { BoxTuple, ImageSize };
import type { TaskToken } from 'florence2-client/catalogue';

/** One labelled object of an image, as stored in the dataset's records. */
export interface Instance {
  /** Index into the dataset's class list. */
  classId: number;
  /** The phrase the model returned (before mapping to the class). */
  label: string;
  /** The model's confidence in (0, 1]. */
  score: number;
  /** Clipped to the image. */
  box: BoxTuple;
  /** Segmentation polygons (flat `x, y, ...`, ≥ 3 points each), clipped; only when segmentation ran. */
  polygons?: number[][];
}

/** Train/val subset of an image, or null when the dataset is not split. */
export type Split = 'train' | 'val' | null;

/**
 * Everything known about one annotated image; every output file (label, COCO entry, visual) is a
 * function of its record, which is why a resumed run can rebuild them byte for byte.
 */
export interface ImageRecord {
  /** Dataset key (`sub/stem`). */
  key: string;
  /** Absolute path of the source image. */
  source: string;
  /** The image inside the dataset, relative to the output folder (`images/train/sub/stem.jpg`). */
  image: string;
  split: Split;
  width: number;
  height: number;
  instances: Instance[];
}

/** One model call, as the annotator asks a backend for it. */
export interface BackendRequest {
  /** Encoded image bytes, read from the source file. */
  image: Buffer;
  task: TaskToken;
  text?: string;
  region?: PixelRegion;
}

/** What a backend returns per request: the parsed result with scores, and the image's oriented size. */
export interface BackendResult {
  result: ScoredPostProcessResult;
  imageSize: ImageSize;
}

/** Options of one backend call. */
export interface BackendRunOptions {
  /** Aborting asks the backend to stop early (between decoder steps, or by cancelling the call). */
  signal?: AbortSignal;
}

/**
 * Where annotation requests run: in process over a loaded model ({@link EmbeddedBackend}) or on a
 * florence2 server. A call takes several requests (possibly of different images and tasks), so a
 * backend can batch them.
 */
export interface AnnotationBackend {
  /**
   * Runs the requests; the answer has one entry per request, in order. An entry may be an `Error`
   * for a request that failed on its own (bad image); the annotator then fails just that image.
   * Rejecting fails every request of the call.
   */
  run(requests: readonly BackendRequest[], options?: BackendRunOptions): Promise<Array<BackendResult | Error>>;
  /** Preferred number of requests per call (default 4). */
  readonly preferredBatchSize?: number;
  /** Preferred number of calls in flight (default 2). */
  readonly preferredConcurrency?: number;
  /** Releases the model or connection. */
  close?(): Promise<void>;
}
