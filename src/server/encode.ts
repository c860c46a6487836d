/** Worker results → typed proto responses (one builder per task family). */
import type { BatchShape, WorkerResultItem } from '../common/protocol';
import type { StageTimings } from '../florence/pipeline';
import type { ValidRequest } from './validate';
import type { Box } from 'florence2-client/generated/florence2/v1/Box';
import type { SegmentInstance } from 'florence2-client/generated/florence2/v1/SegmentInstance';
import type { ResponseMeta } from 'florence2-client/generated/florence2/v1/ResponseMeta';
import type { RunResponse } from 'florence2-client/generated/florence2/v1/RunResponse';
import { scoredResultAs, type ResultShape } from '../florence/postprocess';

export interface Completed {
  items: WorkerResultItem[];
  timings: StageTimings;
  device: string;
  queueMs: number;
  batchWaitMs: number;
  batch: BatchShape & { steps: number };
  requestId: string;
  /** When the request arrived (performance.now()). */
  arrived: number;
  now: number;
}

function meta(v: ValidRequest, c: Completed): ResponseMeta {
  const first = c.items[0];
  return {
    timings: {
      queue_ms: c.queueMs,
      preprocess_ms: c.timings.preprocess,
      vision_ms: c.timings.vision,
      encoder_ms: c.timings.encoder,
      decode_ms: c.timings.decoder,
      postprocess_ms: c.timings.postprocess,
      total_ms: c.now - c.arrived,
      batch_wait_ms: c.batchWaitMs,
    },
    batch: { requests: c.batch.requests, rows: c.batch.rows, decoder_steps: c.batch.steps },
    prompt_tokens: c.items.reduce((s, i) => s + i.promptTokens, 0),
    generated_tokens: c.items.reduce((s, i) => s + i.generatedTokens, 0),
    raw_text: v.includeRawText ? c.items.map((i) => i.text).join('\n') : '',
    image_width: first?.imageSize.width ?? 0,
    image_height: first?.imageSize.height ?? 0,
    request_id: c.requestId,
    device: c.device,
  };
}

/** A score only when asked for: the proto field has presence, so one not asked for is absent, not 0. */
const score = (v: ValidRequest, scores: number[] | undefined, i: number): { score?: number } =>
  v.includeScores ? { score: scores?.[i] ?? 0 } : {};

function boxes(v: ValidRequest, bboxes: number[][], labels: string[], scores: number[], labelOverride?: string): Box[] {
  return bboxes.map(([x1, y1, x2, y2], i) => ({ x1, y1, x2, y2, label: labelOverride ?? labels[i], ...score(v, scores, i) }));
}

function instances(v: ValidRequest, polygons: number[][][], labels: string[], scores: number[], labelOverride?: string): SegmentInstance[] {
  return polygons.map((polys, i) => ({
    polygons: polys.map((coords) => ({ coords })),
    label: labelOverride ?? labels[i],
    ...score(v, scores, i),
  }));
}

/** The response of a validated request's family, as the RunResponse oneof (typed RPCs send the member). */
export function encodeResponse(v: ValidRequest, c: Completed): RunResponse {
  const m = meta(v, c);
  const first = c.items[0];
  const as = <S extends ResultShape>(item: WorkerResultItem, shape: S) => scoredResultAs(item.task, item.result, shape);
  switch (v.family) {
    case 'caption':
      return { caption: { text: as(first, 'text'), meta: m } };
    case 'region':
      return { region: { text: as(first, 'text'), meta: m } };
    case 'detect': {
      const r = as(first, 'boxes');
      return { detect: { boxes: boxes(v, r.bboxes, r.labels, r.scores), meta: m } };
    }
    case 'phrase_grounding': {
      const r = as(first, 'boxes');
      return { phrase_grounding: { boxes: boxes(v, r.bboxes, r.labels, r.scores), meta: m } };
    }
    case 'segment': {
      const r = as(first, 'polygons');
      return { segment: { instances: instances(v, r.polygons, r.labels, r.scores), meta: m } };
    }
    case 'ocr': {
      if (first.task === '<OCR>') return { ocr: { text: as(first, 'text'), lines: [], meta: m } };
      const r = as(first, 'quad_boxes');
      return {
        ocr: {
          text: r.labels.join('\n'),
          lines: r.quad_boxes.map((points, i) => ({ points, text: r.labels[i], ...score(v, r.scores, i) })),
          meta: m,
        },
      };
    }
    case 'open_vocabulary': {
      // One prompt per class: label each finding with the class that was asked for.
      const all: Box[] = [];
      const polys: SegmentInstance[] = [];
      c.items.forEach((item, k) => {
        const r = as(item, 'open_vocabulary');
        const cls = v.classes![k];
        all.push(...boxes(v, r.bboxes, r.bboxes_labels, r.bboxes_scores, cls));
        polys.push(...instances(v, r.polygons, r.polygons_labels, r.polygons_scores, cls));
      });
      return { open_vocabulary: { boxes: all, instances: polys, meta: m } };
    }
  }
}
