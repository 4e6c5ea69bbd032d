"""The ordered, retrying write queue under raysweep's one MLflow writer (`tracking.MlflowWriter`).

Calls run one after another on one daemon thread, so the caller (Tune's event loop) never waits
on SQLite or a tracking server. A call that fails because the server cannot be reached is
retried, in order, with capped backoff until it succeeds; the calls behind it wait. Only at the
end of the sweep is waiting bounded (`RAYSWEEP_TRACKING_GRACE_S`): what is still queued then is
abandoned with one error saying how to record it later (`--resume`, from the checkpoints). Any
other failure is recorded once and the queue goes on. A call can ask `retrying()` whether its
previous try may have landed (the reply was lost), to avoid recording twice.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from raysweep.errors import UserError

ENV_GRACE = "RAYSWEEP_TRACKING_GRACE_S"
DEFAULT_GRACE_S = 120.0
RESUME_HINT = "raysweep run <sweep file> --resume"
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0
# A plain HTTP 500 is usually a passing server fault (a locked database), sometimes a request
# the server can never handle: a few tries, then it is an error like any other.
_SERVER_ERROR_ATTEMPTS = 4
_DOWN_STATUS = re.compile(
    r"too many (408|429|502|503|504) error responses|error code (502|503|504)"
)
_SERVER_ERROR = re.compile(r"too many 500 error responses|error code 500\b")


def grace_seconds() -> float:
    """`$RAYSWEEP_TRACKING_GRACE_S`, else 120 s (see `WriteQueue.wait` for why)."""
    value = os.environ.get(ENV_GRACE, "").strip()
    try:
        return max(0.0, float(value)) if value else DEFAULT_GRACE_S
    except ValueError as exc:
        raise UserError(f"${ENV_GRACE}: not a number of seconds: {value!r}") from exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from or during: MLflow raises its MlflowException inside
    `except` without `from`, so the requests error is only the `__context__`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def outage_reason(exc: BaseException) -> str | None:
    """A few words on why `exc` means the tracking server cannot be reached now; None if it
    is any other error (a bad request, a missing run), which retrying would not fix."""
    import requests
    import urllib3

    chain = list(_causes(exc))
    # The most telling cause first: requests reports a read timeout as a ConnectionError.
    kinds: list[tuple[str, tuple[type[BaseException], ...]]] = [
        ("connection refused", (ConnectionRefusedError,)),
        ("connection reset", (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)),
        ("timed out", (requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)),
        (
            "connection failed",
            (
                requests.ConnectionError,
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ProtocolError,
            ),
        ),
    ]
    for words, types in kinds:
        if any(isinstance(err, types) for err in chain):
            return words
    for err in chain:
        # Statuses show only in the text: urllib3's "too many 503 error responses" once
        # MLflow's retries are spent, or MLflow's "failed with error code 503 != 200".
        found = _DOWN_STATUS.search(str(err))
        if found:
            return f"HTTP {found.group(1) or found.group(2)}"
    return None


def _server_error(exc: BaseException) -> bool:
    """An HTTP 500 from the server (see `_SERVER_ERROR_ATTEMPTS`)."""
    return any(_SERVER_ERROR.search(str(err)) for err in _causes(exc))


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


@dataclass
class Write:
    """One queued MLflow call and the Future its caller holds."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)
    deadline: float | None = None  # monotonic; this write's own limit (start_parent)


@dataclass
class Outage:
    """The server has been unreachable since `since` (wall clock)."""

    since: float
    reason: str
    announced: bool = False  # on_outage was called


class WriteQueue:
    """Calls run in order on one background thread, retried while `uri` is unreachable.

    `on_outage(text)` is called once when the server becomes unreachable, `on_recovered(text)`
    when it answers again (both from the writer thread; the driver prints them).
    """

    def __init__(
        self,
        uri: str,
        on_outage: Callable[[str], None] | None = None,
        on_recovered: Callable[[str], None] | None = None,
        *,
        resume_hint: str = RESUME_HINT,
        max_backoff_s: float = _MAX_BACKOFF_S,
    ) -> None:
        self.uri = uri
        self._on_outage = on_outage
        self._on_recovered = on_recovered
        self._resume_hint = resume_hint
        self._grace_s = grace_seconds()  # checked now: a bad value fails before anything runs
        self._max_backoff_s = max_backoff_s
        self._errors: list[str] = []
        self._queue: deque[Write] = deque()
        self._cond = threading.Condition()
        self._nudge = threading.Event()  # wakes a backoff pause when a deadline is set
        self._local = threading.local()  # `retrying`: set on the writer thread per attempt
        self._closed = False
        self._busy = False
        self._deadline: float | None = None  # monotonic; set while wait()/flush() wait
        self._outage: Outage | None = None
        self._gave_up = False  # a grace period ran out and the server is still unreachable
        self._lost = 0
        self._lost_since: float | None = None
        self._lost_futures: set[Future[Any]] = set()
        # A daemon thread: a write stuck on a dead server must not keep the process alive
        # (a ThreadPoolExecutor's threads are joined at interpreter exit).
        self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a write; failures are collected (tracking must not kill the sweep).

        Arguments that are Futures (of earlier writes) are replaced by their results; a write
        whose Future argument came to nothing (its run was never created) is skipped."""
        return self._enqueue(Write(fn, args))

    def wait(self, grace_s: float | None = None) -> bool:
        """Block until every write queued so far is done (one thread: writes run in order).

        The wait is bounded only while the server is unreachable: once `grace_s` (default
        `$RAYSWEEP_TRACKING_GRACE_S`, else 120 s) have passed since this call, the writes
        still queued are abandoned (`flush` returns one error saying so). 120 s outlasts a
        tracking server's restart (seconds) and a network blip, and is short next to a sweep;
        a longer wait gains nothing, since `--resume` records every trial from its checkpoints.
        Returns False if writes were abandoned (now or earlier)."""
        self._drain(grace_s)
        return self._lost == 0

    def flush(self, grace_s: float | None = None) -> list[str]:
        """Wait for every queued write (bounded as in `wait`), stop the thread; returns the
        errors seen, ending with one for the writes abandoned to an unreachable server."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._drain(grace_s)
        self._thread.join()
        return self.errors()

    def errors(self) -> list[str]:
        """The failed writes so far, and the abandoned ones summed up in one message."""
        errors = list(self._errors)
        if self._lost:
            since = _clock(self._lost_since or time.time())
            errors.append(
                f"MLflow at {self.uri} unreachable since {since}; {self._lost} writes not "
                f"recorded; the checkpoints are kept: run `{self._resume_hint}` once it is "
                "back to record them"
            )
        return errors

    def _enqueue(self, write: Write) -> Future[Any]:
        with self._cond:
            if self._closed:
                raise RuntimeError("the MLflow writer is closed (flush() was called)")
            self._queue.append(write)
            self._cond.notify_all()
        return write.future

    def _drain(self, grace_s: float | None) -> None:
        """Wait until the queue is empty and the thread idle, with a deadline for outages."""
        deadline = time.monotonic() + (self._grace_s if grace_s is None else max(0.0, grace_s))
        with self._cond:
            self._deadline = deadline
            self._nudge.set()
            self._cond.wait_for(lambda: not self._queue and not self._busy)
            if self._deadline == deadline:
                self._deadline = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                write = self._queue.popleft()
                self._busy = True
            try:
                self._perform(write)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any write
                self._errors.append(f"{_name(write.fn)}: {exc}")
                if not write.future.done():
                    write.future.set_result(None)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _perform(self, write: Write) -> None:
        if not write.future.set_running_or_notify_cancel():
            return
        futures = [a for a in write.args if isinstance(a, Future)]
        # Writes run in order on this thread, so an earlier write's Future is done by now.
        if any(f.result() is None for f in futures):
            # Its run was never created: the cause is recorded already (an error, or lost).
            if any(f in self._lost_futures for f in futures):
                self._lose(write)
            write.future.set_result(None)
            return
        args = tuple(a.result() if isinstance(a, Future) else a for a in write.args)
        write.future.set_result(self._attempt(write, args))

    def _attempt(self, write: Write, args: tuple[Any, ...]) -> Any:
        """The write's result, retried while the server is unreachable; None if it failed."""
        for attempt in itertools.count():
            self._local.retrying = attempt > 0
            try:
                result = write.fn(*args)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, none raised
                if not self._retry_after(write, exc, attempt):
                    return None
            else:
                self._note_recovered()
                return result
            finally:
                self._local.retrying = False
        raise AssertionError("unreachable")  # itertools.count() never ends

    def _retry_after(self, write: Write, exc: Exception, attempt: int) -> bool:
        """After a failed try: pause and say True to try again, or record the write as failed
        (an error) or abandoned (past the deadline) and say False."""
        reason = outage_reason(exc)
        if reason is None:
            if _server_error(exc) and attempt + 1 < _SERVER_ERROR_ATTEMPTS:
                self._pause(attempt, write)
                return True
            self._errors.append(f"{_name(write.fn)}: {exc}")
            return False
        # Announced from the second failure on: one dropped connection is no outage.
        self._note_outage(reason, announce=attempt > 0)
        if self._past_deadline(write):
            self._give_up(write)
            return False
        self._pause(attempt, write)
        return True

    # ---- outages ----------------------------------------------------------------------------

    def _note_outage(self, reason: str, announce: bool) -> None:
        if self._outage is None:
            self._outage = Outage(time.time(), reason)
        if not announce or self._outage.announced:
            return
        self._outage.announced = True
        with self._cond:
            queued = len(self._queue) + 1
        self._tell(
            self._on_outage,
            f"MLflow at {self.uri} unreachable since {_clock(self._outage.since)} ({reason}); "
            f"training goes on, {queued} writes queued and retried until it is back",
        )

    def _note_recovered(self) -> None:
        self._gave_up = False
        outage, self._outage = self._outage, None
        if outage is None or not outage.announced:
            return
        with self._cond:
            queued = len(self._queue)
        self._tell(
            self._on_recovered,
            f"MLflow reachable again after {time.time() - outage.since:.0f} s; recording the "
            f"{queued} writes still queued",
        )

    def _tell(self, callback: Callable[[str], None] | None, text: str) -> None:
        if callback is None:
            return
        with contextlib.suppress(Exception):  # a broken printer must not stop the writes
            callback(text)

    def _past_deadline(self, write: Write) -> bool:
        if self._gave_up:
            return True
        now = time.monotonic()
        with self._cond:
            limits = [d for d in (self._deadline, write.deadline) if d is not None]
        return any(now >= d for d in limits)

    def _give_up(self, write: Write) -> None:
        """Abandon `write` and every write queued behind it (the server is still down)."""
        self._gave_up = True
        self._lose(write)
        with self._cond:
            queued = list(self._queue)
            self._queue.clear()
        for other in queued:
            if other.future.set_running_or_notify_cancel():
                self._lose(other)
                other.future.set_result(None)

    def _lose(self, write: Write) -> None:
        self._lost += 1
        self._lost_futures.add(write.future)
        if self._lost_since is None:
            self._lost_since = self._outage.since if self._outage else time.time()

    def _pause(self, attempt: int, write: Write) -> None:
        """Capped exponential backoff, cut short at a deadline or when one is set."""
        delay = min(_FIRST_BACKOFF_S * 2**attempt, self._max_backoff_s)
        with self._cond:
            limits = [d for d in (self._deadline, write.deadline) if d is not None]
        if limits:
            delay = max(0.0, min(delay, min(limits) - time.monotonic()))
        self._nudge.wait(delay)
        self._nudge.clear()

    def submit_until(self, fn: Callable[..., Any], args: tuple[Any, ...], limit_s: float) -> Any:
        """Run `fn(*args)` now (after what is queued) and wait for it; while the server is
        unreachable it is retried for at most `limit_s`. UserError if it fails or times out."""
        write = Write(fn, args, deadline=time.monotonic() + limit_s)
        result = self._enqueue(write).result()
        if result is None:
            lost = write.future in self._lost_futures
            why = self.errors()[-1] if lost or not self._errors else self._errors[-1]
            raise UserError(why)
        return result

    def retrying(self) -> bool:
        """Whether the call running on this thread is a retry (its last try may have landed)."""
        return bool(getattr(self._local, "retrying", False))


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", fn))
