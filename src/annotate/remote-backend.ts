/**
 * Annotation on a florence2 server: each request goes through the client SDK (retries for
 * UNAVAILABLE / RESOURCE_EXHAUSTED included) and its typed answer is mapped back to the library's
 * result shapes, so the annotator treats remote and embedded results alike.
 */
import { type Florence2Client, Florence2Error, InvalidArgumentError } from 'florence2-client';
import type { Box, SegmentInstance } from 'florence2-client';
import type { GenerationOverrides } from '../florence/pipeline';
import type { AnnotationBackend, BackendRequest, BackendResult, BackendRunOptions } from './types';

/** Requests kept in flight on the server by default: enough to keep its per-device queues non-empty. */
export const DEFAULT_REMOTE_CONCURRENCY = 8;

const boxesResult = (boxes: Box[]) => ({
  bboxes: boxes.map((b) => [b.x1, b.y1, b.x2, b.y2]),
  labels: boxes.map((b) => b.label),
  scores: boxes.map((b) => b.score ?? 0), // always there: every request below asks for scores
});

const polygonsResult = (instances: SegmentInstance[]) => ({
  polygons: instances.map((i) => i.polygons),
  labels: instances.map((i) => i.label),
  scores: instances.map((i) => i.score ?? 0),
});

export class RemoteBackend implements AnnotationBackend {
  readonly preferredConcurrency: number;
  // Each request is its own call and the server batches what arrives, so a backend call of one
  // request lets `concurrency` count requests in flight, and no slot waits for the slowest of a group.
  readonly preferredBatchSize = 1;

  constructor(
    private readonly client: Florence2Client,
    private readonly generation: GenerationOverrides = {},
    concurrency = DEFAULT_REMOTE_CONCURRENCY,
  ) {
    this.preferredConcurrency = concurrency;
  }

  private async one(req: BackendRequest, signal: AbortSignal | undefined): Promise<BackendResult> {
    const options = { includeScores: true, numBeams: this.generation.numBeams, maxNewTokens: this.generation.maxNewTokens, signal };
    const size = (m: { imageWidth: number; imageHeight: number }) => ({ width: m.imageWidth, height: m.imageHeight });
    switch (req.task) {
      case '<OD>': {
        const r = await this.client.detect(req.image, { ...options, kind: 'objects' });
        return { result: boxesResult(r.boxes), imageSize: size(r.meta) };
      }
      case '<CAPTION_TO_PHRASE_GROUNDING>': {
        const r = await this.client.groundPhrases(req.image, req.text ?? '', options);
        return { result: boxesResult(r.boxes), imageSize: size(r.meta) };
      }
      case '<OPEN_VOCABULARY_DETECTION>': {
        const r = await this.client.detectOpenVocabulary(req.image, [req.text ?? ''], options);
        const b = boxesResult(r.boxes);
        const p = polygonsResult(r.instances);
        return {
          result: {
            bboxes: b.bboxes,
            bboxes_labels: b.labels,
            bboxes_scores: b.scores,
            polygons: p.polygons,
            polygons_labels: p.labels,
            polygons_scores: p.scores,
          },
          imageSize: size(r.meta),
        };
      }
      case '<REFERRING_EXPRESSION_SEGMENTATION>': {
        const r = await this.client.segment(req.image, { referringExpression: req.text ?? '' }, options);
        return { result: polygonsResult(r.instances), imageSize: size(r.meta) };
      }
      case '<REGION_TO_SEGMENTATION>': {
        const r = await this.client.segment(req.image, { region: req.region! }, options);
        return { result: polygonsResult(r.instances), imageSize: size(r.meta) };
      }
      default:
        throw new Error(`annotation does not use task ${req.task}`);
    }
  }

  /** One answer per request; a request the server rejects (e.g. a corrupt image) fails alone. */
  async run(requests: readonly BackendRequest[], options: BackendRunOptions = {}): Promise<(BackendResult | Error)[]> {
    const settled = await Promise.allSettled(requests.map((r) => this.one(r, options.signal)));
    return settled.map((s) => {
      if (s.status === 'fulfilled') return s.value;
      const err: unknown = s.reason;
      // Anything but a per-request rejection (the server gone, a cancel) fails the whole call.
      if (err instanceof Florence2Error && !(err instanceof InvalidArgumentError)) throw err;
      return err instanceof Error ? err : new Error(String(err));
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
