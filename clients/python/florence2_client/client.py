"""The typed Florence-2 client: one method per task family, deadlines, TLS or insecure channels,
retries for UNAVAILABLE / RESOURCE_EXHAUSTED, the Stream as a generator, and grpc.health.v1 checks
over the same channel. The Python spelling of the TypeScript Florence2Client (src/client/client.ts).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union, overload

import grpc
from google.protobuf.wrappers_pb2 import Int32Value, StringValue

from . import _convert as convert
from ._generated import florence2_pb2 as pb
from ._generated import florence2_pb2_grpc as pb_grpc
from ._stream import DEFAULT_MAX_IN_FLIGHT, StreamInput, run_stream
from .errors import UnavailableError
from .retry import RetryPolicy, with_retries
from .types import (
    CaptionDetail,
    CaptionRequest,
    CaptionResult,
    DetectKind,
    DetectRequest,
    DetectResult,
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
    RegionInput,
    RegionRequest,
    RegionResult,
    RegionTask,
    SegmentRequest,
    SegmentResult,
    StreamOutcome,
    TaskRequest,
    TaskResult,
)

#: The server's default message limit (50 MiB); the channel's is raised to match.
DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024

#: Request metadata: a mapping or (key, value) pairs.
MetadataInput = Union[Mapping[str, str], Sequence[Tuple[str, str]]]

_HEALTH_STATUS: Tuple[HealthStatus, ...] = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")

R = TypeVar("R")

#: The load-balancing policies a client may ask for.
LOAD_BALANCING_POLICIES: Tuple[str, ...] = ("round_robin", "pick_first")


def default_load_balancing(target: str) -> str:
    """The policy a target gets when none is asked for: ``round_robin`` for a ``dns:`` target (a
    headless Service's name resolves to every ready pod) and for an address list
    (``ipv4:10.0.0.1:50051,10.0.0.2:50051``), else ``pick_first`` (as the TypeScript client)."""
    t = target.strip()
    if re.match(r"dns:", t, re.IGNORECASE):
        return "round_robin"
    m = re.match(r"ipv[46]:(.*)$", t, re.IGNORECASE)
    if m and len(m.group(1).split(",")) > 1:
        return "round_robin"
    return "pick_first"


@dataclass(frozen=True)
class Tls:
    """TLS material: ``root_certs`` for a private CA (None = the system roots), plus ``private_key``
    and ``cert_chain`` (PEM bytes) for mutual TLS."""

    root_certs: Optional[bytes] = None
    private_key: Optional[bytes] = None
    cert_chain: Optional[bytes] = None


#: Channel credentials: "insecure" (plain TCP), Tls material, or ready-made grpc.ChannelCredentials.
CredentialsInput = Union[str, Tls, grpc.ChannelCredentials]


def _channel(address: str, credentials: Optional[CredentialsInput], options: List[Tuple[str, Any]]) -> grpc.Channel:
    if credentials is None or credentials == "insecure":
        return grpc.insecure_channel(address, options=options)
    if isinstance(credentials, Tls):
        creds = grpc.ssl_channel_credentials(credentials.root_certs, credentials.private_key, credentials.cert_chain)
        return grpc.secure_channel(address, creds, options=options)
    if isinstance(credentials, grpc.ChannelCredentials):
        return grpc.secure_channel(address, credentials, options=options)
    raise ValueError(f'credentials must be "insecure", Tls(...) or grpc.ChannelCredentials; got {credentials!r}')


class Florence2Client:
    """A Florence-2 server connection. Methods raise :class:`Florence2Error` subclasses. One client
    holds one channel; share it, and :meth:`close` it (or use ``with``) when done.

    Times are in seconds, as in grpcio: ``timeout`` is the TypeScript client's ``deadlineMs``.
    """

    def __init__(
        self,
        address: str,
        *,
        credentials: Optional[CredentialsInput] = None,
        token: Optional[str] = None,
        default_timeout: Optional[float] = None,
        max_retries: int = 3,
        retry_base_delay: float = 0.1,
        retry_max_delay: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        load_balancing: Optional[str] = None,
        keepalive_time: float = 30.0,
        keepalive_timeout: float = 10.0,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        """
        :param address: ``host:port``, or any gRPC target: ``dns:///name:port`` (every address the
            name resolves to, e.g. a Kubernetes headless Service), ``ipv4:a:port,b:port`` (a list).
        :param credentials: "insecure" (default), :class:`Tls`, or grpc.ChannelCredentials.
        :param token: bearer token for a server with ``--auth-tokens-file``: sent as
            ``authorization: Bearer <token>`` on every call (as metadata, so it works on any channel).
        :param default_timeout: deadline in seconds of unary calls without their own ``timeout``.
        :param max_retries: retries after the first attempt for UNAVAILABLE and RESOURCE_EXHAUSTED.
        :param retry_base_delay: backoff cap of the first retry in seconds, doubling per retry.
        :param retry_max_delay: largest backoff in seconds.
        :param max_message_bytes: largest message sent or received.
        :param load_balancing: ``"round_robin"`` (each call to the next connected server) or
            ``"pick_first"`` (one server); default round_robin for ``dns:`` targets and address
            lists, pick_first for a plain ``host:port``.
        :param keepalive_time: seconds between keepalive pings while calls are in flight (0 = none), so
            a server that vanished without closing the connection fails them UNAVAILABLE (retried).
        :param keepalive_timeout: seconds a keepalive ping may go unanswered before the connection is dropped.
        :param channel_options: extra grpcio channel options (override the ones above).
        """
        if not isinstance(address, str) or address == "":
            raise ValueError('Florence2Client needs an address, "host:port"')
        if load_balancing is not None and load_balancing not in LOAD_BALANCING_POLICIES:
            raise ValueError(f"load_balancing must be 'round_robin' or 'pick_first', got {load_balancing!r}")
        if isinstance(keepalive_time, bool) or not isinstance(keepalive_time, (int, float)) or not keepalive_time >= 0:
            raise ValueError(f"keepalive_time must be seconds >= 0 (0 = no keepalive), got {keepalive_time!r}")
        if isinstance(keepalive_timeout, bool) or not isinstance(keepalive_timeout, (int, float)) or not keepalive_timeout > 0:
            raise ValueError(f"keepalive_timeout must be seconds > 0, got {keepalive_timeout!r}")
        #: The load-balancing policy in use (given, or the default for the address).
        self.load_balancing: str = load_balancing or default_load_balancing(address)
        options: List[Tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # The default service config: one a resolver returns (a DNS TXT record) wins.
            ("grpc.service_config", json.dumps({"loadBalancingConfig": [{self.load_balancing: {}}]})),
        ]
        if keepalive_time > 0:
            options += [
                ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
                ("grpc.keepalive_timeout_ms", max(1, int(keepalive_timeout * 1000))),
            ]
        overridden = {k for k, _ in channel_options}
        options = [o for o in options if o[0] not in overridden] + list(channel_options)
        self.channel: grpc.Channel = _channel(address, credentials, options)
        #: The generated stub, for anything this wrapper does not cover.
        self.raw = pb_grpc.Florence2Stub(self.channel)
        # grpc.health.v1 without its stubs (python3-grpcio ships none, and a second copy of them
        # would clash in the descriptor pool with grpcio-health-checking's): HealthCheckRequest
        # {string service = 1} and HealthCheckResponse {ServingStatus status = 1} have the wire
        # form of StringValue and Int32Value.
        self._health_check = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda service: StringValue(value=service).SerializeToString(),
            response_deserializer=lambda data: Int32Value.FromString(data).value,
        )
        self.retry_policy = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay)
        self.default_timeout = default_timeout
        self._token = token

    def __enter__(self) -> Florence2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in progress fail, later calls are refused."""
        self.channel.close()

    # --- task methods ---------------------------------------------------------------------

    def caption(
        self,
        image: ImageInput,
        *,
        detail: CaptionDetail = "brief",
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> CaptionResult:
        """A caption at one of three detail levels (default brief)."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(CaptionRequest(image=image, detail=detail, options=gen))
        return convert.from_caption(self._unary(self.raw.Caption, req, timeout, metadata, max_retries))

    def detect(
        self,
        image: ImageInput,
        *,
        kind: DetectKind = "objects",
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> DetectResult:
        """Boxes without text input: objects (default), dense region captions, or region proposals."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(DetectRequest(image=image, kind=kind, options=gen))
        return convert.from_detect(self._unary(self.raw.Detect, req, timeout, metadata, max_retries))

    def detect_open_vocabulary(
        self,
        image: ImageInput,
        classes: Union[Sequence[str], str],
        *,
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> OpenVocabularyResult:
        """Boxes (or polygons) for each of the given classes, labelled with the class asked for."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(OpenVocabularyRequest(image=image, classes=classes, options=gen))
        return convert.from_open_vocabulary(self._unary(self.raw.DetectOpenVocabulary, req, timeout, metadata, max_retries))

    def ground_phrases(
        self,
        image: ImageInput,
        caption: str,
        *,
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> PhraseGroundingResult:
        """Boxes for the phrases of a caption, labelled with the phrase."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(PhraseGroundingRequest(image=image, caption=caption, options=gen))
        return convert.from_phrase_grounding(self._unary(self.raw.GroundPhrases, req, timeout, metadata, max_retries))

    def segment(
        self,
        image: ImageInput,
        *,
        referring_expression: Optional[str] = None,
        region: Optional[RegionInput] = None,
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> SegmentResult:
        """Polygons for a referring expression or a region (exactly one of them)."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(SegmentRequest(image=image, referring_expression=referring_expression, region=region, options=gen))
        return convert.from_segment(self._unary(self.raw.Segment, req, timeout, metadata, max_retries))

    def ocr(
        self,
        image: ImageInput,
        *,
        with_regions: bool = False,
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> OcrResult:
        """The text in the image, or (with_regions) its lines with quadrilaterals."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(OcrRequest(image=image, with_regions=with_regions, options=gen))
        return convert.from_ocr(self._unary(self.raw.Ocr, req, timeout, metadata, max_retries))

    def describe_region(
        self,
        image: ImageInput,
        region: RegionInput,
        task: RegionTask = "category",
        *,
        num_beams: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        include_raw_text: Optional[bool] = None,
        include_scores: Optional[bool] = None,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> RegionResult:
        """The category (default), a description, or the text of one region."""
        gen = GenerationOptions(num_beams, max_new_tokens, include_raw_text, include_scores)
        _, req = convert.to_proto(RegionRequest(image=image, region=region, task=task, options=gen))
        return convert.from_region(self._unary(self.raw.DescribeRegion, req, timeout, metadata, max_retries))

    # The result type follows the request's class.
    @overload
    def run(self, request: CaptionRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> CaptionResult: ...
    @overload
    def run(self, request: DetectRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> DetectResult: ...
    @overload
    def run(self, request: OpenVocabularyRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> OpenVocabularyResult: ...
    @overload
    def run(self, request: PhraseGroundingRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> PhraseGroundingResult: ...
    @overload
    def run(self, request: SegmentRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> SegmentResult: ...
    @overload
    def run(self, request: OcrRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> OcrResult: ...
    @overload
    def run(self, request: RegionRequest, *, timeout: Optional[float] = ..., metadata: Optional[MetadataInput] = ..., max_retries: Optional[int] = ...) -> RegionResult: ...

    def run(
        self,
        request: TaskRequest,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> TaskResult:
        """Any task through the generic Run RPC."""
        req = convert.to_run_request(request)
        return convert.from_run_response(self._unary(self.raw.Run, req, timeout, metadata, max_retries))

    def model_info(
        self, *, timeout: Optional[float] = None, metadata: Optional[MetadataInput] = None, max_retries: Optional[int] = None
    ) -> ModelInfo:
        """The served model, its devices, limits and versions (GetModelInfo)."""
        return convert.from_model_info(self._unary(self.raw.GetModelInfo, pb.GetModelInfoRequest(), timeout, metadata, max_retries))

    def health(
        self,
        service: str = "",
        *,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_retries: Optional[int] = None,
    ) -> HealthStatus:
        """grpc.health.v1 Check: "" (default) for the whole server, "florence2.v1.Florence2" for the
        service. A server that is not reachable raises UnavailableError after the retries."""
        status = self._unary(self._health_check, service, timeout, metadata, max_retries)
        return _HEALTH_STATUS[status] if 0 <= status < len(_HEALTH_STATUS) else "UNKNOWN"

    def stream(
        self,
        requests: Iterable[StreamInput],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[MetadataInput] = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> Iterator[StreamOutcome]:
        """Many requests on one call. Yields a StreamOutcome (``id`` and ``result`` or ``error``) per
        request as answers arrive, not in request order. Requests are StreamItem(id, request) or
        ``(id, request)`` pairs, pulled lazily with at most ``max_in_flight`` sent and not yet
        consumed (keep it at or below the server's queue bound). Never retried; ``timeout`` covers
        the whole stream (the client's default does not apply). If the call fails, unanswered ids
        get the call's error, then the generator raises it. Leaving the loop early cancels the call.
        """
        md = self._metadata(metadata)
        return run_stream(lambda it: self.raw.Stream(it, timeout=timeout, metadata=md), requests, max_in_flight)

    def wait_for_ready(self, timeout: float = 10.0) -> None:
        """Waits until the channel is connected, or raises UnavailableError after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UnavailableError(f"the channel was not ready within {timeout} s") from None

    # --- plumbing -------------------------------------------------------------------------

    def _metadata(self, metadata: Optional[MetadataInput]) -> List[Tuple[str, str]]:
        pairs = list(metadata.items()) if isinstance(metadata, Mapping) else list(metadata or [])
        if self._token is not None:
            pairs = [(k, v) for k, v in pairs if k.lower() != "authorization"]
            pairs.append(("authorization", f"Bearer {self._token}"))
        return pairs

    def _unary(
        self,
        method: Callable[..., R],
        request: Any,
        timeout: Optional[float],
        metadata: Optional[MetadataInput],
        max_retries: Optional[int],
    ) -> R:
        """One unary call with the deadline and retry policy of the call's options."""
        if timeout is None:
            timeout = self.default_timeout
        # One deadline for all attempts: retries never extend the caller's budget.
        deadline = None if timeout is None else time.monotonic() + timeout
        policy = self.retry_policy
        if max_retries is not None:
            policy = RetryPolicy(max_retries=max_retries, base_delay=policy.base_delay, max_delay=policy.max_delay)
        md = self._metadata(metadata)
        return with_retries(lambda remaining: method(request, timeout=remaining, metadata=md), policy, deadline)


__all__ = ["Florence2Client", "Tls", "CredentialsInput", "MetadataInput", "DEFAULT_MAX_MESSAGE_BYTES"]
