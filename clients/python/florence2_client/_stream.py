"""The bidirectional Stream as a generator of per-request outcomes (src/client/stream.ts in Python).

grpcio pulls the request iterator on a thread of its own and the caller pulls outcomes, so the two
meet in a queue: a reader thread puts the server's answers in it, the request side puts the
requests it refused itself (bad id, unreadable image), and the caller's generator takes them out.
Requests are pulled from the caller's iterable only while fewer than ``max_in_flight`` are sent and
not yet consumed: the server refuses work beyond its queue bound, and streams are never retried.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, List, Optional, Set, Tuple, Union

import grpc

from ._convert import from_run_response, to_run_request
from ._generated import florence2_pb2 as pb
from .errors import CancelledError, Florence2Error, InvalidArgumentError
from .types import StreamItem, StreamOutcome, TaskRequest

DEFAULT_MAX_IN_FLIGHT = 8

#: A stream item as a StreamItem or as an ``(id, request)`` pair.
StreamInput = Union[StreamItem, Tuple[str, TaskRequest]]

# What the queue carries: ("outcome", an outcome), or ("end", None when the call ended well, else its
# grpc.RpcError).
_Outcome = Tuple[str, StreamOutcome]
_End = Tuple[str, Optional[grpc.RpcError]]


def run_stream(
    open_call: Callable[[Iterator[pb.StreamRequest]], Any],
    requests: Iterable[StreamInput],
    max_in_flight: int,
) -> Iterator[StreamOutcome]:
    """Runs one Stream call. Every request gets exactly one outcome; if the call itself fails
    (deadline, cancel, server gone), the unanswered requests get that error as their outcome and the
    generator then raises it. Closing the generator early (``break``) cancels the call."""
    max_in_flight = max(1, int(max_in_flight))
    events: "queue.Queue[Union[_Outcome, _End]]" = queue.Queue()
    lock = threading.Condition()
    in_flight: Set[str] = set()  # sent, not yet answered
    taken = 0  # slots: sent and unanswered, or answered (or refused here) and not yet consumed
    stopped = False
    input_error: List[Exception] = []  # the caller's iterable raised: [exception]
    call_box: List[Any] = []  # the call, once grpcio made it (the request side may need to cancel it)

    def taken_back() -> None:  # with the lock held
        nonlocal taken
        taken -= 1
        lock.notify_all()

    def take_slot() -> bool:
        nonlocal taken
        with lock:
            lock.wait_for(lambda: stopped or taken < max_in_flight)
            if stopped:
                return False
            taken += 1
            return True

    def refuse(id_: str, err: Florence2Error) -> None:
        events.put(("outcome", StreamOutcome(id=id_, error=err)))

    def request_iterator() -> Iterator[pb.StreamRequest]:
        try:
            items = iter(requests)
            while take_slot():
                try:
                    item = next(items)
                except StopIteration:
                    with lock:
                        taken_back()
                    return
                id_, request = (item.id, item.request) if isinstance(item, StreamItem) else item
                if not isinstance(id_, str) or id_ == "":
                    refuse(str(id_ or ""), InvalidArgumentError("`request_id` is required on every stream request (a non-empty string)"))
                    continue
                with lock:
                    duplicate = id_ in in_flight
                if duplicate:
                    refuse(id_, InvalidArgumentError(f"`request_id` {id_!r} is already in flight on this stream"))
                    continue
                try:
                    run = to_run_request(request)
                except OSError as e:
                    # One unreadable file must not end the whole stream.
                    refuse(id_, InvalidArgumentError(f"`request.{request.family}.image.data`: {e}"))
                    continue
                except (TypeError, ValueError, AttributeError) as e:
                    refuse(id_, InvalidArgumentError(f"`request`: {e}"))
                    continue
                with lock:
                    if stopped:
                        return
                    in_flight.add(id_)
                yield pb.StreamRequest(request_id=id_, request=run)
        except Exception as e:  # the caller's iterable failed: end the call, re-raise it to the caller
            input_error.append(e)
            if call_box:
                call_box[0].cancel()

    call = open_call(request_iterator())
    call_box.append(call)

    def read() -> None:
        try:
            for msg in call:
                id_ = msg.request_id
                with lock:
                    in_flight.discard(id_)
                if msg.WhichOneof("outcome") == "result":
                    try:
                        outcome = StreamOutcome(id=id_, result=from_run_response(msg.result))
                    except ValueError as e:
                        outcome = StreamOutcome(id=id_, error=Florence2Error.from_status(grpc.StatusCode.UNKNOWN, str(e)))
                else:
                    outcome = StreamOutcome(
                        id=id_,
                        error=Florence2Error.from_status(msg.error.code, msg.error.message or "no outcome in the stream response"),
                    )
                events.put(("outcome", outcome))
            events.put(("end", None))
        except grpc.RpcError as e:
            events.put(("end", e))

    reader = threading.Thread(target=read, name="florence2-stream-reader", daemon=True)
    reader.start()

    finished = False
    try:
        while True:
            kind, value = events.get()
            if kind == "outcome":
                assert isinstance(value, StreamOutcome)
                yield value
                with lock:
                    taken_back()
                continue
            finished = True
            if value is None and not input_error:
                return
            failure: Florence2Error
            if input_error:
                failure = CancelledError("the request iterable failed")
                failure.__cause__ = input_error[0]
            else:
                assert isinstance(value, grpc.RpcError)
                failure = Florence2Error.from_rpc_error(value)
            with lock:
                unanswered = sorted(in_flight)
                in_flight.clear()
            # Refusals the request side queued before the call ended still come first.
            while not events.empty():
                late = events.get_nowait()
                if late[0] == "outcome":
                    assert isinstance(late[1], StreamOutcome)
                    yield late[1]
            for id_ in unanswered:
                yield StreamOutcome(id=id_, error=failure)
            raise input_error[0] if input_error else failure
    finally:
        with lock:
            stopped = True
            lock.notify_all()
        if not finished:
            call.cancel()
