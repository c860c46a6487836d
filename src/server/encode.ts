/** Worker results → typed proto responses (one builder per task family). */
import type { WorkerResultItem } from '../common/protocol';
import type { StageTimings } from '../florence/pipeline';
import type { ValidRequest } from './validate';
import type { Box } from '../generated/florence2/v1/Box';
import type { SegmentInstance } from '../generated/florence2/v1/SegmentInstance';
import type { ResponseMeta } from '../generated/florence2/v1/ResponseMeta';
import type { RunResponse } from '../generated/florence2/v1/RunResponse';
import type { BoxesResult, OpenVocabularyResult, PolygonsResult, QuadBoxesResult } from '../florence/postprocess';

export interface Completed {
  items: WorkerResultItem[];
  timings: StageTimings;
  device: string;
  queueMs: number;
  requestId: string;
  /** When the request arrived (performance.now()). */
  arrived: number;
  now: number;
}

type Scored<T> = T & { scores?: number[]; bboxes_scores?: number[]; polygons_scores?: number[] };

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
    },
    prompt_tokens: c.items.reduce((s, i) => s + i.promptTokens, 0),
    generated_tokens: c.items.reduce((s, i) => s + i.generatedTokens, 0),
    raw_text: v.includeRawText ? c.items.map((i) => i.text).join('\n') : '',
    image_width: first?.imageSize.width ?? 0,
    image_height: first?.imageSize.height ?? 0,
    request_id: c.requestId,
    device: c.device,
  };
}

const score = (v: ValidRequest, scores: number[] | undefined, i: number) => (v.includeScores ? (scores?.[i] ?? 0) : 0);

function boxes(v: ValidRequest, r: Scored<BoxesResult>, labelOverride?: string): Box[] {
  return r.bboxes.map(([x1, y1, x2, y2], i) => ({ x1, y1, x2, y2, label: labelOverride ?? r.labels[i], score: score(v, r.scores, i) }));
}

function instances(v: ValidRequest, polygons: number[][][], labels: string[], scores: number[] | undefined, labelOverride?: string): SegmentInstance[] {
  return polygons.map((polys, i) => ({ polygons: polys.map((coords) => ({ coords })), label: labelOverride ?? labels[i], score: score(v, scores, i) }));
}

/** The response of a validated request's family, as the RunResponse oneof (typed RPCs send the member). */
export function encodeResponse(v: ValidRequest, c: Completed): RunResponse {
  const m = meta(v, c);
  const first = c.items[0];
  switch (v.family) {
    case 'caption':
      return { caption: { text: first.result as string, meta: m } };
    case 'region':
      return { region: { text: first.result as string, meta: m } };
    case 'detect':
      return { detect: { boxes: boxes(v, first.result as Scored<BoxesResult>), meta: m } };
    case 'phrase_grounding':
      return { phrase_grounding: { boxes: boxes(v, first.result as Scored<BoxesResult>), meta: m } };
    case 'segment': {
      const r = first.result as Scored<PolygonsResult>;
      return { segment: { instances: instances(v, r.polygons, r.labels, r.scores), meta: m } };
    }
    case 'ocr': {
      if (typeof first.result === 'string') return { ocr: { text: first.result, lines: [], meta: m } };
      const r = first.result as Scored<QuadBoxesResult>;
      return { ocr: { text: r.labels.join('\n'), lines: r.quad_boxes.map((points, i) => ({ points, text: r.labels[i], score: score(v, r.scores, i) })), meta: m } };
    }
    case 'open_vocabulary': {
      // One prompt per class: label each finding with the class that was asked for.
      const all: Box[] = [];
      const polys: SegmentInstance[] = [];
      c.items.forEach((item, k) => {
        const r = item.result as Scored<OpenVocabularyResult>;
        const cls = v.classes![k];
        all.push(...boxes(v, { bboxes: r.bboxes, labels: r.bboxes_labels, scores: r.bboxes_scores }, cls));
        polys.push(...instances(v, r.polygons, r.polygons_labels, r.polygons_scores, cls));
      });
      return { open_vocabulary: { boxes: all, instances: polys, meta: m } };
    }
  }
}
