/**
 * Friendly types ↔ the generated proto types. The generated input types check what we send; the
 * `__Output` types (loaded with defaults: true) check what we read.
 */
import { readFile } from 'node:fs/promises';
import { selectorTasks, type SelectorFamily, type SelectorProto, type SelectorValue } from './catalogue';
import type { Box__Output } from './generated/florence2/v1/Box';
import type { CaptionDetail as ProtoCaptionDetail } from './generated/florence2/v1/CaptionDetail';
import type { DetectKind as ProtoDetectKind } from './generated/florence2/v1/DetectKind';
import type { ModelInfo__Output } from './generated/florence2/v1/ModelInfo';
import type { Options } from './generated/florence2/v1/Options';
import type { QuadBox__Output } from './generated/florence2/v1/QuadBox';
import type { Region as ProtoRegion } from './generated/florence2/v1/Region';
import type { RegionTask as ProtoRegionTask } from './generated/florence2/v1/RegionTask';
import type { ResponseMeta__Output } from './generated/florence2/v1/ResponseMeta';
import type { RunRequest } from './generated/florence2/v1/RunRequest';
import type { RunResponse__Output } from './generated/florence2/v1/RunResponse';
import type { SegmentInstance__Output } from './generated/florence2/v1/SegmentInstance';
import type { SegmentRequest } from './generated/florence2/v1/SegmentRequest';
import type { CaptionResponse__Output } from './generated/florence2/v1/CaptionResponse';
import type { DetectResponse__Output } from './generated/florence2/v1/DetectResponse';
import type { OpenVocabularyResponse__Output } from './generated/florence2/v1/OpenVocabularyResponse';
import type { SegmentResponse__Output } from './generated/florence2/v1/SegmentResponse';
import type { OcrResponse__Output } from './generated/florence2/v1/OcrResponse';
import type { RegionResponse__Output } from './generated/florence2/v1/RegionResponse';
import type {
  Box,
  CaptionDetail,
  CaptionResult,
  DetectKind,
  DetectResult,
  GenerationOptions,
  ImageInput,
  ModelInfo,
  OcrResult,
  OpenVocabularyResult,
  PhraseGroundingResult,
  QuadBox,
  RegionInput,
  RegionResult,
  RegionTask,
  ResponseMeta,
  SegmentInstance,
  SegmentResult,
  SegmentTarget,
  TaskRequest,
  TaskResult,
} from './types';

/** Bytes for the request: a file path is read; bytes are sent as they are (no copy). */
export async function readImage(image: ImageInput): Promise<Buffer> {
  if (typeof image === 'string') return readFile(image);
  if (Buffer.isBuffer(image)) return image;
  if (image instanceof Uint8Array) return Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  throw new TypeError('image must be a Buffer, a Uint8Array or a file path');
}

/** A selector family's client spelling → proto enum name, from the task catalogue; unset picks the family's default. */
function selector<F extends SelectorFamily>(family: F, what: string): (value: SelectorValue<F> | undefined) => SelectorProto<F> {
  const choices = selectorTasks(family);
  return (value) => {
    const found = value === undefined ? choices[0] : choices.find((c) => c.value === value);
    if (!found) throw new TypeError(`${what} must be one of ${choices.map((c) => c.value).join(', ')}; got ${JSON.stringify(value)}`);
    return found.proto;
  };
}

export const captionDetail: (d: CaptionDetail | undefined) => ProtoCaptionDetail = selector('caption', 'detail');
export const detectKind: (k: DetectKind | undefined) => ProtoDetectKind = selector('detect', 'kind');
export const regionTask: (t: RegionTask | undefined) => ProtoRegionTask = selector('region', 'task');

/** A region object or tuple → the proto Region. */
export function toRegion(r: RegionInput): ProtoRegion {
  if (Array.isArray(r)) {
    const [x1, y1, x2, y2] = r as readonly number[];
    return { x1, y1, x2, y2 };
  }
  const o = r as ProtoRegion & { x1: number; y1: number; x2: number; y2: number };
  return { x1: o.x1, y1: o.y1, x2: o.x2, y2: o.y2 };
}

/** camelCase options → proto Options (unset stays unset so the server applies its defaults). */
export function toOptions(o: GenerationOptions | undefined): Options {
  const out: Options = {};
  if (o?.numBeams !== undefined) out.num_beams = o.numBeams;
  if (o?.maxNewTokens !== undefined) out.max_new_tokens = o.maxNewTokens;
  if (o?.includeRawText !== undefined) out.include_raw_text = o.includeRawText;
  if (o?.includeScores !== undefined) out.include_scores = o.includeScores;
  return out;
}

/** The oneof target of a SegmentRequest. */
export function segmentTarget(t: SegmentTarget): Pick<SegmentRequest, 'referring_expression' | 'region'> {
  if (t.referringExpression !== undefined) return { referring_expression: t.referringExpression };
  if (t.region !== undefined) return { region: toRegion(t.region) };
  throw new TypeError('segment needs { referringExpression } or { region }');
}

/** A friendly request → the proto RunRequest, reading the image if it is a path. */
export async function toRunRequest(req: TaskRequest): Promise<RunRequest> {
  const image = { data: await readImage(req.image) };
  const options = toOptions(req.options);
  switch (req.family) {
    case 'caption':
      return { caption: { image, detail: captionDetail(req.detail), options } };
    case 'detect':
      return { detect: { image, kind: detectKind(req.kind), options } };
    case 'open_vocabulary':
      return { open_vocabulary: { image, classes: [...req.classes], options } };
    case 'phrase_grounding':
      return { phrase_grounding: { image, caption: req.caption, options } };
    case 'segment':
      return { segment: { image, ...segmentTarget(req), options } };
    case 'ocr':
      return { ocr: { image, with_regions: req.withRegions ?? false, options } };
    case 'region':
      return { region: { image, region: toRegion(req.region), task: regionTask(req.task), options } };
    default:
      throw new TypeError(`unknown request family ${JSON.stringify((req as { family?: unknown }).family)}`);
  }
}

/** What a request asked for beyond its result; what it did not ask for stays absent from the answer. */
export interface Extras {
  rawText: boolean;
}

export const extrasOf = (o: GenerationOptions | undefined): Extras => ({
  rawText: o?.includeRawText === true,
});

/** The extras of a RunRequest-shaped friendly request. */
export const requestExtras = (req: TaskRequest): Extras => extrasOf(req.options);

export function fromMeta(m: ResponseMeta__Output | null | undefined, extras: Extras): ResponseMeta {
  const t = m?.timings;
  return {
    timings: {
      queueMs: t?.queue_ms ?? 0,
      preprocessMs: t?.preprocess_ms ?? 0,
      visionMs: t?.vision_ms ?? 0,
      encoderMs: t?.encoder_ms ?? 0,
      decodeMs: t?.decode_ms ?? 0,
      postprocessMs: t?.postprocess_ms ?? 0,
      totalMs: t?.total_ms ?? 0,
    },
    promptTokens: m?.prompt_tokens ?? 0,
    generatedTokens: m?.generated_tokens ?? 0,
    ...(extras.rawText ? { rawText: m?.raw_text ?? '' } : {}),
    imageWidth: m?.image_width ?? 0,
    imageHeight: m?.image_height ?? 0,
    requestId: m?.request_id ?? '',
    device: m?.device ?? '',
  };
}

// A score is on the wire only when it was asked for; absent stays absent (not 0).
const scoreOf = (score: number | undefined): { score?: number } => (score === undefined ? {} : { score });

const fromBox = (b: Box__Output): Box => ({ x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2, label: b.label, ...scoreOf(b.score) });
const fromQuad = (q: QuadBox__Output): QuadBox => ({ points: [...q.points], text: q.text, ...scoreOf(q.score) });
const fromInstance = (i: SegmentInstance__Output): SegmentInstance => ({
  polygons: i.polygons.map((p) => [...p.coords]),
  label: i.label,
  ...scoreOf(i.score),
});

export const fromCaption = (r: CaptionResponse__Output, x: Extras): CaptionResult => ({
  family: 'caption',
  text: r.text,
  meta: fromMeta(r.meta, x),
});
export const fromDetect = (r: DetectResponse__Output, x: Extras): DetectResult => ({
  family: 'detect',
  boxes: r.boxes.map(fromBox),
  meta: fromMeta(r.meta, x),
});
export const fromOpenVocabulary = (r: OpenVocabularyResponse__Output, x: Extras): OpenVocabularyResult => ({
  family: 'open_vocabulary',
  boxes: r.boxes.map(fromBox),
  instances: r.instances.map(fromInstance),
  meta: fromMeta(r.meta, x),
});
export const fromPhraseGrounding = (r: DetectResponse__Output, x: Extras): PhraseGroundingResult => ({
  family: 'phrase_grounding',
  boxes: r.boxes.map(fromBox),
  meta: fromMeta(r.meta, x),
});
export const fromSegment = (r: SegmentResponse__Output, x: Extras): SegmentResult => ({
  family: 'segment',
  instances: r.instances.map(fromInstance),
  meta: fromMeta(r.meta, x),
});
export const fromOcr = (r: OcrResponse__Output, x: Extras): OcrResult => ({
  family: 'ocr',
  text: r.text,
  lines: r.lines.map(fromQuad),
  meta: fromMeta(r.meta, x),
});
export const fromRegion = (r: RegionResponse__Output, x: Extras): RegionResult => ({
  family: 'region',
  text: r.text,
  meta: fromMeta(r.meta, x),
});

/** A RunResponse → the friendly result of whichever family it carries. */
export function fromRunResponse(r: RunResponse__Output, x: Extras): TaskResult {
  switch (r.result) {
    case 'caption':
      return fromCaption(r.caption!, x);
    case 'detect':
      return fromDetect(r.detect!, x);
    case 'open_vocabulary':
      return fromOpenVocabulary(r.open_vocabulary!, x);
    case 'phrase_grounding':
      return fromPhraseGrounding(r.phrase_grounding!, x);
    case 'segment':
      return fromSegment(r.segment!, x);
    case 'ocr':
      return fromOcr(r.ocr!, x);
    case 'region':
      return fromRegion(r.region!, x);
    default:
      // A newer server with a family this client does not know.
      throw new TypeError(`the server answered with an unknown result ${JSON.stringify(r.result)}`);
  }
}

export function fromModelInfo(m: ModelInfo__Output): ModelInfo {
  const l = m.limits;
  return {
    model: m.model,
    revision: m.revision,
    files: { ...m.files },
    devices: m.devices.map((d) => ({ name: d.name, provider: d.provider, workers: d.workers })),
    limits: {
      // uint64 arrives as a decimal string (longs: String); every real limit fits a double.
      maxImagePixels: Number(l?.max_image_pixels ?? 0),
      maxMessageBytes: Number(l?.max_message_bytes ?? 0),
      maxNumBeams: l?.max_num_beams ?? 0,
      maxNewTokens: l?.max_new_tokens ?? 0,
      maxTextChars: l?.max_text_chars ?? 0,
      maxClasses: l?.max_classes ?? 0,
    },
    defaultNumBeams: m.default_num_beams,
    defaultMaxNewTokens: m.default_max_new_tokens,
    tasks: [...m.tasks],
    serverVersion: m.server_version,
    onnxruntimeVersion: m.onnxruntime_version,
    nodeVersion: m.node_version,
  };
}
