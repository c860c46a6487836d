"""Friendly types ↔ the generated proto messages."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from google.protobuf.message import Message

from ._generated import florence2_pb2 as pb
from .types import (
    Box,
    CaptionRequest,
    CaptionResult,
    DetectRequest,
    DetectResult,
    DeviceInfo,
    GenerationOptions,
    ImageInput,
    ModelInfo,
    OcrRequest,
    OcrResult,
    OpenVocabularyRequest,
    OpenVocabularyResult,
    PhraseGroundingRequest,
    PhraseGroundingResult,
    QuadBox,
    RegionInput,
    RegionRequest,
    RegionResult,
    ResponseMeta,
    SegmentInstance,
    SegmentRequest,
    SegmentResult,
    ServerLimits,
    TaskRequest,
    TaskResult,
    Timings,
)
from .types import Region as RegionValue


def read_image(image: ImageInput) -> bytes:
    """Bytes for the request: a path (str or os.PathLike) is read; bytes-like values are sent as they are."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, (bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    raise TypeError(f"image must be bytes or a file path; got {type(image).__name__}")


def _selector(enum_prefix: str, enum: Any) -> Dict[str, int]:
    """A selector enum's client spelling → value, read from the proto itself: the name without its
    prefix, lower-cased (CAPTION_DETAIL_PARAGRAPH → "paragraph"), UNSPECIFIED left out. The same
    spelling the TypeScript client takes from the task catalogue."""
    out: Dict[str, int] = {}
    for name, number in enum.items():
        if number != 0:
            out[name[len(enum_prefix) :].lower()] = number
    return out


_CAPTION_DETAIL = _selector("CAPTION_DETAIL_", pb.CaptionDetail)
_DETECT_KIND = _selector("DETECT_KIND_", pb.DetectKind)
_REGION_TASK = _selector("REGION_TASK_", pb.RegionTask)


def _choose(choices: Dict[str, int], what: str, value: str) -> int:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return choices[value]


def to_options(o: Optional[GenerationOptions]) -> pb.Options:
    """GenerationOptions → proto Options; None fields stay unset so the server applies its defaults."""
    out = pb.Options()
    if o is None:
        return out
    if o.num_beams is not None:
        out.num_beams = o.num_beams
    if o.max_new_tokens is not None:
        out.max_new_tokens = o.max_new_tokens
    if o.include_raw_text is not None:
        out.include_raw_text = o.include_raw_text
    if o.include_scores is not None:
        out.include_scores = o.include_scores
    return out


def to_region(r: RegionInput) -> pb.Region:
    if isinstance(r, RegionValue):
        return pb.Region(x1=r.x1, y1=r.y1, x2=r.x2, y2=r.y2)
    values = list(r)
    if len(values) != 4:
        raise ValueError(f"a region is (x1, y1, x2, y2); got {len(values)} numbers")
    x1, y1, x2, y2 = values
    return pb.Region(x1=x1, y1=y1, x2=x2, y2=y2)


def to_proto(req: TaskRequest) -> Tuple[str, Message]:
    """A friendly request → its family (the RunRequest oneof name) and the typed proto request,
    reading the image if it is a path."""
    image = pb.Image(data=read_image(req.image))
    options = to_options(req.options)
    if isinstance(req, CaptionRequest):
        return req.family, pb.CaptionRequest(image=image, detail=_choose(_CAPTION_DETAIL, "detail", req.detail), options=options)
    if isinstance(req, DetectRequest):
        return req.family, pb.DetectRequest(image=image, kind=_choose(_DETECT_KIND, "kind", req.kind), options=options)
    if isinstance(req, OpenVocabularyRequest):
        classes = [req.classes] if isinstance(req.classes, str) else list(req.classes)
        return req.family, pb.OpenVocabularyRequest(image=image, classes=classes, options=options)
    if isinstance(req, PhraseGroundingRequest):
        return req.family, pb.PhraseGroundingRequest(image=image, caption=req.caption, options=options)
    if isinstance(req, SegmentRequest):
        if (req.referring_expression is None) == (req.region is None):
            raise ValueError("segment needs exactly one of referring_expression and region")
        if req.referring_expression is not None:
            return req.family, pb.SegmentRequest(image=image, referring_expression=req.referring_expression, options=options)
        assert req.region is not None
        return req.family, pb.SegmentRequest(image=image, region=to_region(req.region), options=options)
    if isinstance(req, OcrRequest):
        return req.family, pb.OcrRequest(image=image, with_regions=req.with_regions, options=options)
    if isinstance(req, RegionRequest):
        return req.family, pb.RegionRequest(
            image=image, region=to_region(req.region), task=_choose(_REGION_TASK, "task", req.task), options=options
        )
    raise TypeError(f"not a task request: {type(req).__name__}")


def to_run_request(req: TaskRequest) -> pb.RunRequest:
    family, inner = to_proto(req)
    run = pb.RunRequest()
    getattr(run, family).CopyFrom(inner)
    return run


def from_meta(m: pb.ResponseMeta) -> ResponseMeta:
    t = m.timings
    return ResponseMeta(
        timings=Timings(
            queue_ms=t.queue_ms,
            preprocess_ms=t.preprocess_ms,
            vision_ms=t.vision_ms,
            encoder_ms=t.encoder_ms,
            decode_ms=t.decode_ms,
            postprocess_ms=t.postprocess_ms,
            total_ms=t.total_ms,
        ),
        prompt_tokens=m.prompt_tokens,
        generated_tokens=m.generated_tokens,
        raw_text=m.raw_text,
        image_width=m.image_width,
        image_height=m.image_height,
        request_id=m.request_id,
        device=m.device,
    )


def _score(m: Any) -> Optional[float]:
    """The score when the server sent one (it does only when asked), else None: never a made-up 0."""
    return m.score if m.HasField("score") else None


def _box(b: pb.Box) -> Box:
    return Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, label=b.label, score=_score(b))


def _quad(q: pb.QuadBox) -> QuadBox:
    return QuadBox(points=list(q.points), text=q.text, score=_score(q))


def _instance(i: pb.SegmentInstance) -> SegmentInstance:
    return SegmentInstance(polygons=[list(p.coords) for p in i.polygons], label=i.label, score=_score(i))


def from_caption(r: pb.CaptionResponse) -> CaptionResult:
    return CaptionResult(text=r.text, meta=from_meta(r.meta))


def from_detect(r: pb.DetectResponse) -> DetectResult:
    return DetectResult(boxes=[_box(b) for b in r.boxes], meta=from_meta(r.meta))


def from_open_vocabulary(r: pb.OpenVocabularyResponse) -> OpenVocabularyResult:
    return OpenVocabularyResult(
        boxes=[_box(b) for b in r.boxes], instances=[_instance(i) for i in r.instances], meta=from_meta(r.meta)
    )


def from_phrase_grounding(r: pb.DetectResponse) -> PhraseGroundingResult:
    return PhraseGroundingResult(boxes=[_box(b) for b in r.boxes], meta=from_meta(r.meta))


def from_segment(r: pb.SegmentResponse) -> SegmentResult:
    return SegmentResult(instances=[_instance(i) for i in r.instances], meta=from_meta(r.meta))


def from_ocr(r: pb.OcrResponse) -> OcrResult:
    return OcrResult(text=r.text, lines=[_quad(q) for q in r.lines], meta=from_meta(r.meta))


def from_region(r: pb.RegionResponse) -> RegionResult:
    return RegionResult(text=r.text, meta=from_meta(r.meta))


# The RunResponse oneof name → how to read that family's response.
FROM_RESPONSE = {
    "caption": from_caption,
    "detect": from_detect,
    "open_vocabulary": from_open_vocabulary,
    "phrase_grounding": from_phrase_grounding,
    "segment": from_segment,
    "ocr": from_ocr,
    "region": from_region,
}


def from_run_response(r: pb.RunResponse) -> TaskResult:
    """A RunResponse → the result of whichever family it carries."""
    family = r.WhichOneof("result")
    if family is None or family not in FROM_RESPONSE:
        # A newer server with a family this client does not know.
        raise ValueError(f"the server answered with an unknown result {family!r}")
    return FROM_RESPONSE[family](getattr(r, family))  # type: ignore[no-any-return, operator]


def from_model_info(m: pb.ModelInfo) -> ModelInfo:
    lim = m.limits
    return ModelInfo(
        model=m.model,
        revision=m.revision,
        files=dict(m.files),
        devices=[DeviceInfo(name=d.name, provider=d.provider, workers=d.workers) for d in m.devices],
        limits=ServerLimits(
            max_image_pixels=lim.max_image_pixels,
            max_message_bytes=lim.max_message_bytes,
            max_num_beams=lim.max_num_beams,
            max_new_tokens=lim.max_new_tokens,
            max_text_chars=lim.max_text_chars,
            max_classes=lim.max_classes,
        ),
        default_num_beams=m.default_num_beams,
        default_max_new_tokens=m.default_max_new_tokens,
        tasks=list(m.tasks),
        server_version=m.server_version,
        onnxruntime_version=m.onnxruntime_version,
        node_version=m.node_version,
    )
