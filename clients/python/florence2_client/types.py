"""The client's public types: friendly requests (paths or bytes, string enums) and plain results.

Coordinates are pixels of the image after EXIF orientation, origin at the top-left. Results are
fully populated: a field the server left unset reads as 0 / "" / [], as in the TypeScript client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Dict, List, Literal, Optional, Sequence, Union

if TYPE_CHECKING:
    from .errors import Florence2Error

#: An encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF) as bytes, or the path of such a file.
ImageInput = Union[bytes, bytearray, memoryview, str, os.PathLike]

CaptionDetail = Literal["brief", "detailed", "paragraph"]
DetectKind = Literal["objects", "dense_region_captions", "region_proposals"]
RegionTask = Literal["category", "description", "ocr"]
TaskFamily = Literal["caption", "detect", "open_vocabulary", "phrase_grounding", "segment", "ocr", "region"]
HealthStatus = Literal["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]


@dataclass(frozen=True)
class Region:
    """A box in pixels: top-left (x1, y1), bottom-right (x2, y2)."""

    x1: float
    y1: float
    x2: float
    y2: float


#: A region as a Region or as ``(x1, y1, x2, y2)``.
RegionInput = Union[Region, Sequence[float]]


@dataclass(frozen=True)
class GenerationOptions:
    """Options in the proto; None leaves the server's default."""

    #: Beam width (at most the server's max_num_beams).
    num_beams: Optional[int] = None
    #: Upper bound on generated tokens (at most the server's max_new_tokens).
    max_new_tokens: Optional[int] = None
    #: Return the model's decoded output in ``meta.raw_text``.
    include_raw_text: Optional[bool] = None
    #: Return confidence scores; otherwise every ``score`` is None.
    include_scores: Optional[bool] = None


# Requests for Florence2Client.run and stream, one class per task family (the RunRequest oneof).


@dataclass(frozen=True)
class CaptionRequest:
    family: ClassVar[Literal["caption"]] = "caption"
    image: ImageInput
    detail: CaptionDetail = "brief"
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class DetectRequest:
    family: ClassVar[Literal["detect"]] = "detect"
    image: ImageInput
    kind: DetectKind = "objects"
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class OpenVocabularyRequest:
    family: ClassVar[Literal["open_vocabulary"]] = "open_vocabulary"
    image: ImageInput
    classes: Sequence[str]
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class PhraseGroundingRequest:
    family: ClassVar[Literal["phrase_grounding"]] = "phrase_grounding"
    image: ImageInput
    caption: str
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class SegmentRequest:
    """Exactly one of ``referring_expression`` and ``region``."""

    family: ClassVar[Literal["segment"]] = "segment"
    image: ImageInput
    referring_expression: Optional[str] = None
    region: Optional[RegionInput] = None
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class OcrRequest:
    family: ClassVar[Literal["ocr"]] = "ocr"
    image: ImageInput
    with_regions: bool = False
    options: Optional[GenerationOptions] = None


@dataclass(frozen=True)
class RegionRequest:
    family: ClassVar[Literal["region"]] = "region"
    image: ImageInput
    region: RegionInput
    task: RegionTask = "category"
    options: Optional[GenerationOptions] = None


TaskRequest = Union[
    CaptionRequest,
    DetectRequest,
    OpenVocabularyRequest,
    PhraseGroundingRequest,
    SegmentRequest,
    OcrRequest,
    RegionRequest,
]


@dataclass(frozen=True)
class Box:
    """A detected box. ``label`` is empty for region proposals; ``score`` is None unless asked for."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    score: Optional[float] = None


@dataclass(frozen=True)
class QuadBox:
    """A text line and its quadrilateral: ``points`` is x1, y1, ..., x4, y4, clockwise from the top-left."""

    points: List[float]
    text: str
    score: Optional[float] = None


@dataclass(frozen=True)
class SegmentInstance:
    """A segmented instance: polygons as flat x, y lists (an object may have several parts)."""

    polygons: List[List[float]]
    label: str
    score: Optional[float] = None


@dataclass(frozen=True)
class Timings:
    """Server time per stage, in milliseconds."""

    queue_ms: float
    preprocess_ms: float
    vision_ms: float
    encoder_ms: float
    decode_ms: float
    postprocess_ms: float
    total_ms: float


@dataclass(frozen=True)
class ResponseMeta:
    """How a response was produced."""

    timings: Timings
    prompt_tokens: int
    generated_tokens: int
    #: The model's decoded output when ``include_raw_text`` was set, else "".
    raw_text: str
    image_width: int
    image_height: int
    #: The server's id for the request (also in its logs).
    request_id: str
    #: The device that ran it, e.g. "cpu:0".
    device: str


@dataclass(frozen=True)
class CaptionResult:
    family: ClassVar[Literal["caption"]] = "caption"
    text: str
    meta: ResponseMeta


@dataclass(frozen=True)
class DetectResult:
    family: ClassVar[Literal["detect"]] = "detect"
    boxes: List[Box]
    meta: ResponseMeta


@dataclass(frozen=True)
class OpenVocabularyResult:
    family: ClassVar[Literal["open_vocabulary"]] = "open_vocabulary"
    #: Boxes labelled with the class that was asked for.
    boxes: List[Box]
    #: Instances the model answered with polygons instead of boxes.
    instances: List[SegmentInstance]
    meta: ResponseMeta


@dataclass(frozen=True)
class PhraseGroundingResult:
    family: ClassVar[Literal["phrase_grounding"]] = "phrase_grounding"
    boxes: List[Box]
    meta: ResponseMeta


@dataclass(frozen=True)
class SegmentResult:
    family: ClassVar[Literal["segment"]] = "segment"
    instances: List[SegmentInstance]
    meta: ResponseMeta


@dataclass(frozen=True)
class OcrResult:
    family: ClassVar[Literal["ocr"]] = "ocr"
    #: The text (without regions only).
    text: str
    #: Text lines with quadrilaterals (with regions only).
    lines: List[QuadBox]
    meta: ResponseMeta


@dataclass(frozen=True)
class RegionResult:
    family: ClassVar[Literal["region"]] = "region"
    text: str
    meta: ResponseMeta


TaskResult = Union[
    CaptionResult,
    DetectResult,
    OpenVocabularyResult,
    PhraseGroundingResult,
    SegmentResult,
    OcrResult,
    RegionResult,
]


@dataclass(frozen=True)
class StreamItem:
    """One request of a stream: a caller-chosen id (non-empty, unique among unanswered ones) and the request."""

    id: str
    request: TaskRequest


@dataclass(frozen=True)
class StreamOutcome:
    """One answer of a stream: exactly one of ``result`` and ``error`` is set."""

    id: str
    result: Optional[TaskResult] = None
    error: Optional[Florence2Error] = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DeviceInfo:
    """A device the server runs workers on."""

    name: str
    provider: str
    workers: int


@dataclass(frozen=True)
class ServerLimits:
    """Server limits; requests beyond them get INVALID_ARGUMENT."""

    max_image_pixels: int
    max_message_bytes: int
    max_num_beams: int
    max_new_tokens: int
    max_text_chars: int
    max_classes: int


@dataclass(frozen=True)
class ModelInfo:
    """The served model (GetModelInfo)."""

    model: str
    #: ``<owner>/<name>@<commit>`` for a Hub download, ``local`` for a folder.
    revision: str
    files: Dict[str, str]
    devices: List[DeviceInfo]
    limits: ServerLimits
    default_num_beams: int
    default_max_new_tokens: int
    tasks: List[str]
    server_version: str
    onnxruntime_version: str
    node_version: str
