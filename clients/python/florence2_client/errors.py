"""Typed client errors, one class per gRPC status the server documents.

Every failed call raises a :class:`Florence2Error`; the subclass tells the caller what to do next.
The classes, the status mapping and the field parsing are those of the TypeScript client
(src/client/errors.ts), so both SDKs report a failure the same way.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import grpc

#: Trailing metadata as grpcio gives it: (key, value) pairs.
Metadata = Sequence[Tuple[str, Union[str, bytes]]]

_CODES_BY_NUMBER: Dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}

# A status text that still carries its code ("3 INVALID_ARGUMENT: text"), as some stacks print it.
_CODE_PREFIX = re.compile(r"^\d+ [A-Z_]+: ")
# The server names the offending field first, in backticks: "`options.num_beams` must be <= 8".
_FIELD = re.compile(r"`([^`]+)`")
# The transport's own RESOURCE_EXHAUSTED for an oversized message (either direction).
_MESSAGE_SIZE = re.compile(r"message larger than max", re.IGNORECASE)


def status_code(code: Union[grpc.StatusCode, int]) -> grpc.StatusCode:
    """A grpc.StatusCode for a code or its number (stream errors carry numbers); unknown numbers → UNKNOWN."""
    if isinstance(code, grpc.StatusCode):
        return code
    return _CODES_BY_NUMBER.get(int(code), grpc.StatusCode.UNKNOWN)


def is_message_size_error(details: str) -> bool:
    """Whether a RESOURCE_EXHAUSTED is the channel's message-size limit, which no retry can fix."""
    return _MESSAGE_SIZE.search(details) is not None


class Florence2Error(Exception):
    """A failed call: its gRPC status code and the server's details."""

    code: grpc.StatusCode
    #: The status details as the server sent them (INVALID_ARGUMENT: they name the field and limit).
    details: str
    #: Trailing metadata of the failed call, when there was a call.
    metadata: Optional[Metadata]
    #: How many attempts were made before giving up (1 = no retry).
    attempts: int

    def __init__(
        self,
        code: Union[grpc.StatusCode, int],
        details: str,
        *,
        metadata: Optional[Metadata] = None,
        attempts: int = 1,
    ) -> None:
        self.code = status_code(code)
        self.details = details
        self.metadata = metadata
        self.attempts = attempts
        super().__init__(f"{self.code.name}: {details}")

    @property
    def code_name(self) -> str:
        """The status code's name, e.g. ``INVALID_ARGUMENT``."""
        return str(self.code.name)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again (the client retries these itself)."""
        return False

    @staticmethod
    def from_status(
        code: Union[grpc.StatusCode, int],
        details: str,
        *,
        metadata: Optional[Metadata] = None,
        attempts: int = 1,
    ) -> Florence2Error:
        """The typed error for a status code and its details."""
        code = status_code(code)
        details = _CODE_PREFIX.sub("", details, count=1)
        cls = _CLASS_BY_CODE.get(code)
        if cls is None:
            return UnknownStatusError(code, details, metadata=metadata, attempts=attempts)
        return cls(details, metadata=metadata, attempts=attempts)

    @staticmethod
    def from_rpc_error(err: grpc.RpcError, attempts: int = 1) -> Florence2Error:
        """The typed error for a failed grpcio call (a grpc.RpcError that is also a grpc.Call)."""
        code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (err.details() if isinstance(err, grpc.Call) else None) or str(err)
        metadata = err.trailing_metadata() if isinstance(err, grpc.Call) else None
        out = Florence2Error.from_status(code, details, metadata=metadata, attempts=attempts)
        out.__cause__ = err
        return out


class InvalidArgumentError(Florence2Error):
    """A request field is missing, malformed or beyond a server limit. Not retried."""

    #: The request field the server named (the first backticked name in the details), e.g. ``image.data``.
    field: Optional[str]

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, details, metadata=metadata, attempts=attempts)
        found = _FIELD.search(details)
        self.field = found.group(1) if found else None


class ResourceExhaustedError(Florence2Error):
    """The server is at its queue bound. Retried with backoff (a message-size error is not)."""

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED, details, metadata=metadata, attempts=attempts)

    @property
    def retryable(self) -> bool:
        return not is_message_size_error(self.details)


class DeadlineExceededError(Florence2Error):
    """The call's deadline passed (queued, running, or across retries)."""

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, details, metadata=metadata, attempts=attempts)


class CancelledError(Florence2Error):
    """The call was cancelled (by the caller, or the server saw the client go away)."""

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.CANCELLED, details, metadata=metadata, attempts=attempts)


class UnavailableError(Florence2Error):
    """The server is unreachable, starting, draining, or a worker died during the request. Retried."""

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, details, metadata=metadata, attempts=attempts)

    @property
    def retryable(self) -> bool:
        return True


class InternalError(Florence2Error):
    """An unexpected server error; the details carry the server's request id for its logs."""

    def __init__(self, details: str, *, metadata: Optional[Metadata] = None, attempts: int = 1) -> None:
        super().__init__(grpc.StatusCode.INTERNAL, details, metadata=metadata, attempts=attempts)


class UnknownStatusError(Florence2Error):
    """Any status the API does not document (UNKNOWN, UNIMPLEMENTED, UNAUTHENTICATED, ...)."""


# Each documented status's class, built from the details alone (the class fixes the code).
_CLASS_BY_CODE: Dict[grpc.StatusCode, Callable[..., Florence2Error]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.INTERNAL: InternalError,
}
