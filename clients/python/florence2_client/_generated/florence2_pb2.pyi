from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CAPTION_DETAIL_BRIEF: CaptionDetail
CAPTION_DETAIL_DETAILED: CaptionDetail
CAPTION_DETAIL_PARAGRAPH: CaptionDetail
CAPTION_DETAIL_UNSPECIFIED: CaptionDetail
DESCRIPTOR: _descriptor.FileDescriptor
DETECT_KIND_DENSE_REGION_CAPTIONS: DetectKind
DETECT_KIND_OBJECTS: DetectKind
DETECT_KIND_REGION_PROPOSALS: DetectKind
DETECT_KIND_UNSPECIFIED: DetectKind
REGION_TASK_CATEGORY: RegionTask
REGION_TASK_DESCRIPTION: RegionTask
REGION_TASK_OCR: RegionTask
REGION_TASK_UNSPECIFIED: RegionTask

class BatchInfo(_message.Message):
    __slots__ = ["decoder_steps", "requests", "rows"]
    DECODER_STEPS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    decoder_steps: int
    requests: int
    rows: int
    def __init__(self, requests: _Optional[int] = ..., rows: _Optional[int] = ..., decoder_steps: _Optional[int] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ["label", "score", "x1", "x2", "y1", "y2"]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    x1: float
    x2: float
    y1: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class CaptionRequest(_message.Message):
    __slots__ = ["detail", "image", "options"]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    detail: CaptionDetail
    image: Image
    options: Options
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., detail: _Optional[_Union[CaptionDetail, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class CaptionResponse(_message.Message):
    __slots__ = ["meta", "text"]
    META_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    meta: ResponseMeta
    text: str
    def __init__(self, text: _Optional[str] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ["image", "kind", "options"]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    kind: DetectKind
    options: Options
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., kind: _Optional[_Union[DetectKind, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ["boxes", "meta"]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    meta: ResponseMeta
    def __init__(self, boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ["max_batch_rows", "max_queue_delay_ms", "max_vision_batch", "name", "provider", "workers"]
    MAX_BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_VISION_BATCH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    max_batch_rows: int
    max_queue_delay_ms: int
    max_vision_batch: int
    name: str
    provider: str
    workers: int
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., workers: _Optional[int] = ..., max_batch_rows: _Optional[int] = ..., max_queue_delay_ms: _Optional[int] = ..., max_vision_batch: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class Image(_message.Message):
    __slots__ = ["data"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ["max_classes", "max_image_pixels", "max_message_bytes", "max_new_tokens", "max_num_beams", "max_text_chars"]
    MAX_CLASSES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    max_classes: int
    max_image_pixels: int
    max_message_bytes: int
    max_new_tokens: int
    max_num_beams: int
    max_text_chars: int
    def __init__(self, max_image_pixels: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_num_beams: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_classes: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ["default_max_new_tokens", "default_num_beams", "devices", "files", "limits", "model", "node_version", "onnxruntime_version", "revision", "server_version", "tasks"]
    class FilesEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEFAULT_MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NODE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    default_max_new_tokens: int
    default_num_beams: int
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    files: _containers.ScalarMap[str, str]
    limits: Limits
    model: str
    node_version: str
    onnxruntime_version: str
    revision: str
    server_version: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., revision: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., default_num_beams: _Optional[int] = ..., default_max_new_tokens: _Optional[int] = ..., tasks: _Optional[_Iterable[str]] = ..., server_version: _Optional[str] = ..., onnxruntime_version: _Optional[str] = ..., node_version: _Optional[str] = ...) -> None: ...

class OcrRequest(_message.Message):
    __slots__ = ["image", "options", "with_regions"]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    WITH_REGIONS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: Options
    with_regions: bool
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., with_regions: bool = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class OcrResponse(_message.Message):
    __slots__ = ["lines", "meta", "text"]
    LINES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[QuadBox]
    meta: ResponseMeta
    text: str
    def __init__(self, text: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[QuadBox, _Mapping]]] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class OpenVocabularyRequest(_message.Message):
    __slots__ = ["classes", "image", "options"]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    image: Image
    options: Options
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., classes: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class OpenVocabularyResponse(_message.Message):
    __slots__ = ["boxes", "instances", "meta"]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    instances: _containers.RepeatedCompositeFieldContainer[SegmentInstance]
    meta: ResponseMeta
    def __init__(self, boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., instances: _Optional[_Iterable[_Union[SegmentInstance, _Mapping]]] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ["include_raw_text", "include_scores", "max_new_tokens", "num_beams"]
    INCLUDE_RAW_TEXT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SCORES_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    include_raw_text: bool
    include_scores: bool
    max_new_tokens: int
    num_beams: int
    def __init__(self, num_beams: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., include_raw_text: bool = ..., include_scores: bool = ...) -> None: ...

class PhraseGroundingRequest(_message.Message):
    __slots__ = ["caption", "image", "options"]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    caption: str
    image: Image
    options: Options
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., caption: _Optional[str] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ["coords"]
    COORDS_FIELD_NUMBER: _ClassVar[int]
    coords: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, coords: _Optional[_Iterable[float]] = ...) -> None: ...

class QuadBox(_message.Message):
    __slots__ = ["points", "score", "text"]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedScalarFieldContainer[float]
    score: float
    text: str
    def __init__(self, points: _Optional[_Iterable[float]] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ["x1", "x2", "y1", "y2"]
    X1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    x2: float
    y1: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class RegionRequest(_message.Message):
    __slots__ = ["image", "options", "region", "task"]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: Options
    region: Region
    task: RegionTask
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., task: _Optional[_Union[RegionTask, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class RegionResponse(_message.Message):
    __slots__ = ["meta", "text"]
    META_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    meta: ResponseMeta
    text: str
    def __init__(self, text: _Optional[str] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class ResponseMeta(_message.Message):
    __slots__ = ["batch", "device", "generated_tokens", "image_height", "image_width", "prompt_tokens", "raw_text", "request_id", "timings"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RAW_TEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    batch: BatchInfo
    device: str
    generated_tokens: int
    image_height: int
    image_width: int
    prompt_tokens: int
    raw_text: str
    request_id: str
    timings: Timings
    def __init__(self, timings: _Optional[_Union[Timings, _Mapping]] = ..., prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., raw_text: _Optional[str] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., request_id: _Optional[str] = ..., device: _Optional[str] = ..., batch: _Optional[_Union[BatchInfo, _Mapping]] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ["caption", "detect", "ocr", "open_vocabulary", "phrase_grounding", "region", "segment"]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    OCR_FIELD_NUMBER: _ClassVar[int]
    OPEN_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    PHRASE_GROUNDING_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    caption: CaptionRequest
    detect: DetectRequest
    ocr: OcrRequest
    open_vocabulary: OpenVocabularyRequest
    phrase_grounding: PhraseGroundingRequest
    region: RegionRequest
    segment: SegmentRequest
    def __init__(self, caption: _Optional[_Union[CaptionRequest, _Mapping]] = ..., detect: _Optional[_Union[DetectRequest, _Mapping]] = ..., open_vocabulary: _Optional[_Union[OpenVocabularyRequest, _Mapping]] = ..., phrase_grounding: _Optional[_Union[PhraseGroundingRequest, _Mapping]] = ..., segment: _Optional[_Union[SegmentRequest, _Mapping]] = ..., ocr: _Optional[_Union[OcrRequest, _Mapping]] = ..., region: _Optional[_Union[RegionRequest, _Mapping]] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ["caption", "detect", "ocr", "open_vocabulary", "phrase_grounding", "region", "segment"]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    OCR_FIELD_NUMBER: _ClassVar[int]
    OPEN_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    PHRASE_GROUNDING_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    caption: CaptionResponse
    detect: DetectResponse
    ocr: OcrResponse
    open_vocabulary: OpenVocabularyResponse
    phrase_grounding: DetectResponse
    region: RegionResponse
    segment: SegmentResponse
    def __init__(self, caption: _Optional[_Union[CaptionResponse, _Mapping]] = ..., detect: _Optional[_Union[DetectResponse, _Mapping]] = ..., open_vocabulary: _Optional[_Union[OpenVocabularyResponse, _Mapping]] = ..., phrase_grounding: _Optional[_Union[DetectResponse, _Mapping]] = ..., segment: _Optional[_Union[SegmentResponse, _Mapping]] = ..., ocr: _Optional[_Union[OcrResponse, _Mapping]] = ..., region: _Optional[_Union[RegionResponse, _Mapping]] = ...) -> None: ...

class SegmentInstance(_message.Message):
    __slots__ = ["label", "polygons", "score"]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    score: float
    def __init__(self, polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ..., label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ["image", "options", "referring_expression", "region"]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REFERRING_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: Options
    referring_expression: str
    region: Region
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., referring_expression: _Optional[str] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ["instances", "meta"]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[SegmentInstance]
    meta: ResponseMeta
    def __init__(self, instances: _Optional[_Iterable[_Union[SegmentInstance, _Mapping]]] = ..., meta: _Optional[_Union[ResponseMeta, _Mapping]] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ["code", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ["request", "request_id"]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request: RunRequest
    request_id: str
    def __init__(self, request_id: _Optional[str] = ..., request: _Optional[_Union[RunRequest, _Mapping]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ["error", "request_id", "result"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    error: StreamError
    request_id: str
    result: RunResponse
    def __init__(self, request_id: _Optional[str] = ..., result: _Optional[_Union[RunResponse, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ["batch_wait_ms", "decode_ms", "encoder_ms", "postprocess_ms", "preprocess_ms", "queue_ms", "total_ms", "vision_ms"]
    BATCH_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_MS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    VISION_MS_FIELD_NUMBER: _ClassVar[int]
    batch_wait_ms: float
    decode_ms: float
    encoder_ms: float
    postprocess_ms: float
    preprocess_ms: float
    queue_ms: float
    total_ms: float
    vision_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., preprocess_ms: _Optional[float] = ..., vision_ms: _Optional[float] = ..., encoder_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., postprocess_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_wait_ms: _Optional[float] = ...) -> None: ...

class CaptionDetail(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DetectKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RegionTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
