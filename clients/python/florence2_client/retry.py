"""Retries for unary calls, as the TypeScript client does them (src/client/retry.ts).

Only statuses that say "try again" (UNAVAILABLE, RESOURCE_EXHAUSTED) are retried, with exponential
backoff and full jitter, and never past the call's deadline. Times are in seconds, as everywhere in
grpcio (the TypeScript client's ``retryBaseMs: 100`` is ``base_delay=0.1`` here).
"""

from __future__ import annotations

import random as _random
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

import grpc

from .errors import Florence2Error

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries."""

    #: Retries after the first attempt (0 = never retry).
    max_retries: int = 3
    #: Backoff cap of the first retry in seconds; doubles per retry.
    base_delay: float = 0.1
    #: Upper bound of any single backoff in seconds.
    max_delay: float = 5.0


DEFAULT_RETRY_POLICY = RetryPolicy()


def backoff(retry: int, policy: RetryPolicy, random: Callable[[], float] = _random.random) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): uniform in [0, min(max, base·2^retry)).

    Full jitter spreads clients that failed together so that they do not come back together.
    """
    cap = min(policy.max_delay, policy.base_delay * 2**retry)
    return random() * cap


def is_retryable(err: Florence2Error) -> bool:
    """Whether a failed attempt may be sent again."""
    return err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) and err.retryable


def with_retries(
    attempt: Callable[[Optional[float]], T],
    policy: RetryPolicy,
    deadline: Optional[float] = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    random: Callable[[], float] = _random.random,
) -> T:
    """Calls ``attempt(timeout)`` until it succeeds, fails with a status that is not retryable, runs
    out of retries, or the next backoff would end at or after ``deadline`` (a ``clock()`` time shared
    by every attempt, so retries never extend the caller's budget). ``timeout`` is what is left of
    the deadline, or None without one.

    A grpc.RpcError from an attempt is raised as its Florence2Error, whose ``attempts`` says how many
    attempts were made; any other exception propagates as it is.
    """
    n = 1
    while True:
        try:
            return attempt(None if deadline is None else max(0.0, deadline - clock()))
        except grpc.RpcError as raw:
            err = Florence2Error.from_rpc_error(raw, attempts=n)
        except Florence2Error as typed:
            err = typed
            err.attempts = n
        if not is_retryable(err) or n > policy.max_retries:
            raise err
        delay = backoff(n - 1, policy, random)
        # A retry that could only start after the deadline would fail with DEADLINE_EXCEEDED and
        # hide the real cause: report the last status instead.
        if deadline is not None and clock() + delay >= deadline:
            raise err
        sleep(delay)
        n += 1
