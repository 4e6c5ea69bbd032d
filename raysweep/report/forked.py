"""One function run in a forked copy of this process, beside the caller's own work.

The end-of-sweep report draws its figures on the driver's one Python thread while the
machine's other cores wait for it. A fork starts at once, with matplotlib imported and the
sweep already read, and draws part of the figures there (`raysweep.report.figures`). Where
the child fails, dies or does not answer in time, `result` says so (None) and the caller does
that part itself: a fork is only ever a way to finish sooner.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any

CAN_FORK = hasattr(os, "fork")


class Forked:
    """`fn(*args)` running in a child process; `result` waits for what it returned."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: do the work, hand it back, end without any teardown
            code = 1
            try:
                gc.disable()  # short-lived: no finalizer of the parent's objects runs here
                os.close(self._read)
                data = pickle.dumps(fn(*args))
                with os.fdopen(write, "wb") as out:
                    out.write(data)
                code = 0
            except BaseException:  # noqa: BLE001 - the parent does the work instead
                pass
            finally:
                os._exit(code)
        os.close(write)

    def result(self, timeout_s: float) -> Any | None:
        """What the child returned; None if it failed, or gave no answer in `timeout_s` (it
        is then killed)."""
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        finished = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._read], [], [], left)[0]:
                    break
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    finished = True
                    break
                chunks.append(chunk)
        finally:
            os.close(self._read)
            if not finished:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        if not finished or status != 0:
            return None
        return pickle.loads(b"".join(chunks))
