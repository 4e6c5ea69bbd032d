"""The test side of raysweep's fault points (raysweep/faults.py): hold a sweep at a named point,
wait for it to get there, kill what the test wants, release.

Waiting is for an event (a file the held process creates), never for a length of time: the
deadline only turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

WAIT_S = 900.0  # a hang, not a pace: a held point is normally reached in seconds
_POLL_S = 0.1


class Holds:
    """Fault points of one sweep, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def env(self, *points: str) -> dict[str, str]:
        """The environment that holds `raysweep` at `points` (`point[:trial[:epoch]]`)."""
        return {"RAYSWEEP_HOLD": ",".join(points), "RAYSWEEP_HOLD_DIR": str(self.dir)}

    @staticmethod
    def key(point: str) -> str:
        return point.replace(":", "-").replace("*", "any")

    def wait(self, point: str, proc: subprocess.Popen, log: Path) -> dict:
        """What the process held at `point` wrote (its pid, trial, epoch), once it is there."""
        held = self.dir / f"{self.key(point)}.held"
        deadline = time.monotonic() + WAIT_S
        while not held.exists():
            if proc.poll() is not None:
                pytest.fail(f"raysweep exited {proc.returncode} before {point}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                kill_session(proc)
                pytest.fail(f"{point} was never reached:\n{log.read_text()}")
            time.sleep(_POLL_S)
        return json.loads(held.read_text())

    def release(self, point: str) -> None:
        (self.dir / f"{self.key(point)}.release").touch()

    def pid(self, role: str, trial: str) -> int:
        """The pid a trial's process announced (`faults.announce`)."""
        return int((self.dir / f"{role}-{trial}.pid").read_text())


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process of its session (a local Ray runs under it)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
