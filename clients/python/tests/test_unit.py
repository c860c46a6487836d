"""florence2_client without a server: the status → class mapping, field parsing, the retry policy
(fake clock and sleep, so no real waiting) and request conversion."""

import os
import tempfile
import unittest
from typing import List, Optional

import grpc

from florence2_client import (
    CancelledError,
    CaptionRequest,
    DeadlineExceededError,
    Florence2Error,
    GenerationOptions,
    InternalError,
    InvalidArgumentError,
    OcrRequest,
    RegionRequest,
    ResourceExhaustedError,
    RetryPolicy,
    SegmentRequest,
    UnavailableError,
    UnknownStatusError,
    backoff,
    default_load_balancing,
    is_retryable,
)
from florence2_client import Florence2Client
from florence2_client._convert import to_run_request
from florence2_client._generated import florence2_pb2 as pb
from florence2_client.retry import with_retries


class FakeRpcError(grpc.RpcError, grpc.Call):
    """What a failed grpcio call raises: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):  # type: ignore[no-untyped-def]
        return (("grpc-retry-pushback-ms", "7"),)

    def initial_metadata(self):  # type: ignore[no-untyped-def]
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Optional[float]:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback) -> bool:  # type: ignore[no-untyped-def]
        return False


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: List[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


class ErrorsTest(unittest.TestCase):
    def test_each_status_maps_to_its_class(self) -> None:
        cases = [
            (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
            (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
            (grpc.StatusCode.CANCELLED, CancelledError),
            (grpc.StatusCode.UNAVAILABLE, UnavailableError),
            (grpc.StatusCode.INTERNAL, InternalError),
            (grpc.StatusCode.UNIMPLEMENTED, UnknownStatusError),
            (grpc.StatusCode.UNKNOWN, UnknownStatusError),
        ]
        for code, cls in cases:
            e = Florence2Error.from_status(code, "why", attempts=3)
            self.assertIsInstance(e, cls)
            self.assertEqual((e.code, e.details, e.attempts, str(e)), (code, "why", 3, f"{code.name}: why"))
            # Stream errors carry the number.
            self.assertIsInstance(Florence2Error.from_status(code.value[0], "why"), cls)

    def test_field_is_the_first_backticked_name(self) -> None:
        e = Florence2Error.from_status(3, "`options.num_beams` must be <= 8. Given: 9")
        assert isinstance(e, InvalidArgumentError)
        self.assertEqual(e.field, "options.num_beams")
        self.assertIsNone(InvalidArgumentError("no field here").field)
        self.assertEqual(Florence2Error.from_status(3, "3 INVALID_ARGUMENT: `x` bad").details, "`x` bad")

    def test_from_rpc_error_keeps_details_and_trailers(self) -> None:
        e = Florence2Error.from_rpc_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full"), attempts=2)
        self.assertIsInstance(e, ResourceExhaustedError)
        self.assertEqual((e.details, e.attempts), ("queue full", 2))
        self.assertEqual(e.metadata, (("grpc-retry-pushback-ms", "7"),))

    def test_only_unavailable_and_resource_exhausted_are_retryable(self) -> None:
        self.assertTrue(is_retryable(UnavailableError("x")))
        self.assertTrue(is_retryable(ResourceExhaustedError("queue full")))
        self.assertFalse(is_retryable(ResourceExhaustedError("Received message larger than max (70000000 vs. 67108864)")))
        for code in (3, 4, 1, 13, 2, 12):
            self.assertFalse(is_retryable(Florence2Error.from_status(code, "")), code)


class RetryTest(unittest.TestCase):
    def test_backoff_is_full_jitter_under_an_exponential_cap(self) -> None:
        policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
        self.assertAlmostEqual(backoff(0, policy, lambda: 0.5), 0.05)
        self.assertAlmostEqual(backoff(2, policy, lambda: 0.5), 0.2)
        self.assertAlmostEqual(backoff(10, policy, lambda: 0.5), 0.5)  # capped at max_delay
        self.assertEqual(backoff(3, policy, lambda: 0.0), 0.0)

    def run_attempts(self, failures: List[grpc.StatusCode], policy: RetryPolicy, deadline: Optional[float] = None):
        t = FakeTime()
        timeouts: List[Optional[float]] = []

        def attempt(timeout: Optional[float]) -> str:
            timeouts.append(timeout)
            if len(timeouts) <= len(failures):
                raise FakeRpcError(failures[len(timeouts) - 1], "try again")
            return "ok"

        try:
            out: object = with_retries(
                attempt, policy, None if deadline is None else t.now + deadline, clock=t.clock, sleep=t.sleep, random=lambda: 0.5
            )
        except Florence2Error as e:
            out = e
        return out, timeouts, t.slept

    def test_retries_unavailable_then_succeeds_with_doubling_backoff(self) -> None:
        U = grpc.StatusCode.UNAVAILABLE
        out, timeouts, slept = self.run_attempts([U, grpc.StatusCode.RESOURCE_EXHAUSTED, U], RetryPolicy(3, 0.1, 5.0))
        self.assertEqual(out, "ok")
        self.assertEqual(len(timeouts), 4)
        self.assertEqual([round(s, 6) for s in slept], [0.05, 0.1, 0.2])

    def test_gives_up_after_max_retries_with_attempts(self) -> None:
        out, timeouts, _ = self.run_attempts([grpc.StatusCode.UNAVAILABLE] * 5, RetryPolicy(2, 0.1, 5.0))
        self.assertIsInstance(out, UnavailableError)
        self.assertEqual((out.attempts, len(timeouts)), (3, 3))

    def test_never_retries_invalid_argument(self) -> None:
        out, timeouts, slept = self.run_attempts([grpc.StatusCode.INVALID_ARGUMENT], RetryPolicy(3, 0.1, 5.0))
        self.assertIsInstance(out, InvalidArgumentError)
        self.assertEqual((len(timeouts), slept), (1, []))

    def test_deadline_bounds_retries_and_each_attempt_gets_what_is_left(self) -> None:
        # Backoffs 0.5, 1.0, 2.0 (random 0.5 of caps 1, 2, 4); a 2 s deadline allows the first two only.
        out, timeouts, slept = self.run_attempts([grpc.StatusCode.UNAVAILABLE] * 9, RetryPolicy(9, 1.0, 10.0), deadline=2.0)
        self.assertIsInstance(out, UnavailableError, "the last status, not a DEADLINE_EXCEEDED of our own")
        self.assertEqual(slept, [0.5, 1.0])
        self.assertEqual([round(t, 6) for t in timeouts], [2.0, 1.5, 0.5])


class ConvertTest(unittest.TestCase):
    def test_requests_and_enum_spellings(self) -> None:
        r = to_run_request(CaptionRequest(image=b"img", detail="paragraph", options=GenerationOptions(num_beams=2)))
        self.assertEqual(r.WhichOneof("task"), "caption")
        self.assertEqual(r.caption.detail, pb.CAPTION_DETAIL_PARAGRAPH)
        self.assertEqual(r.caption.options.num_beams, 2)
        self.assertFalse(r.caption.options.include_scores, "unset options stay unset")
        region = to_run_request(RegionRequest(image=bytearray(b"i"), region=[1, 2, 3, 4], task="ocr"))
        self.assertEqual((region.region.task, region.region.region.x2), (pb.REGION_TASK_OCR, 3.0))
        with self.assertRaises(ValueError):
            to_run_request(CaptionRequest(image=b"i", detail="long"))  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            to_run_request(SegmentRequest(image=b"i"))

    def test_image_from_a_path(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.png")
            with open(path, "wb") as f:
                f.write(b"png bytes")
            self.assertEqual(to_run_request(OcrRequest(image=path)).ocr.image.data, b"png bytes")
            with self.assertRaises(FileNotFoundError):
                to_run_request(OcrRequest(image=os.path.join(d, "missing.png")))


class BalancingTest(unittest.TestCase):
    def test_default_policy_per_target(self) -> None:
        cases = [
            ("dns:///florence2-server-headless.ml.svc:50051", "round_robin"),
            ("dns://10.96.0.10/florence2.ml.svc:50051", "round_robin"),
            ("ipv4:10.0.0.1:50051,10.0.0.2:50051", "round_robin"),
            ("ipv6:[::1]:50051,[::2]:50051", "round_robin"),
            ("ipv4:10.0.0.1:50051", "pick_first"),
            ("localhost:50051", "pick_first"),
            ("unix:///run/florence2.sock", "pick_first"),
        ]
        for target, policy in cases:
            self.assertEqual(default_load_balancing(target), policy, target)
        with Florence2Client("dns:///localhost:1") as c:
            self.assertEqual(c.load_balancing, "round_robin")
        with Florence2Client("dns:///localhost:1", load_balancing="pick_first") as c:
            self.assertEqual(c.load_balancing, "pick_first")

    def test_bad_options_name_the_parameter(self) -> None:
        with self.assertRaisesRegex(ValueError, r"^load_balancing must be 'round_robin' or 'pick_first', got 'random'$"):
            Florence2Client("localhost:1", load_balancing="random")
        with self.assertRaisesRegex(ValueError, r"^keepalive_time must be seconds >= 0 \(0 = no keepalive\), got -1$"):
            Florence2Client("localhost:1", keepalive_time=-1)
        with self.assertRaisesRegex(ValueError, r"^keepalive_timeout must be seconds > 0, got 0$"):
            Florence2Client("localhost:1", keepalive_timeout=0)
        Florence2Client("localhost:1", keepalive_time=0).close()


if __name__ == "__main__":
    unittest.main()
