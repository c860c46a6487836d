"""florence2-client: a thin typed Python client for the florence2.v1 gRPC API of florence2-server.

    from florence2_client import Florence2Client

    with Florence2Client("localhost:50051", default_timeout=30) as client:
        boxes = client.detect("photo.jpg").boxes
"""

from types import ModuleType as _ModuleType

from .client import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LOAD_BALANCING_POLICIES,
    CredentialsInput,
    Florence2Client,
    MetadataInput,
    Tls,
    default_load_balancing,
)
from .errors import (
    CancelledError,
    DeadlineExceededError,
    Florence2Error,
    InternalError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
    UnknownStatusError,
)
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy, backoff, is_retryable
from ._stream import DEFAULT_MAX_IN_FLIGHT, StreamInput
from .types import (
    Box,
    CaptionDetail,
    CaptionRequest,
    CaptionResult,
    DetectKind,
    DetectRequest,
    DetectResult,
    DeviceInfo,
    GenerationOptions,
    HealthStatus,
    ImageInput,
    ModelInfo,
    OcrRequest,
    OcrResult,
    OpenVocabularyRequest,
    OpenVocabularyResult,
    PhraseGroundingRequest,
    PhraseGroundingResult,
    QuadBox,
    Region,
    RegionInput,
    RegionRequest,
    RegionResult,
    RegionTask,
    ResponseMeta,
    SegmentInstance,
    SegmentRequest,
    SegmentResult,
    ServerLimits,
    StreamItem,
    StreamOutcome,
    TaskFamily,
    TaskRequest,
    TaskResult,
    Timings,
)

__version__ = "0.1.0"

# Everything imported above except the submodules (``types`` would shadow the standard module).
__all__ = [n for n, v in list(globals().items()) if not n.startswith("_") and not isinstance(v, _ModuleType)]
