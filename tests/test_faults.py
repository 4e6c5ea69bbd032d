"""raysweep.faults: off by default, holds a real process at a named point until released,
once per hold directory, matching trial and epoch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raysweep import faults
from tests.holds import Holds

HOLDER = "from raysweep import faults; faults.hold({point!r}, {trial!r}, {epoch!r}); print('on')"


def _holder(holds: Holds, spec: str, point: str, trial: str = "", epoch=None, log=None):
    code = HOLDER.format(point=point, trial=trial, epoch=epoch)
    out = (log or holds.dir / "out.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-c", code], env=_env(holds, spec), stdout=out, stderr=subprocess.STDOUT
    )


def _env(holds: Holds, spec: str) -> dict[str, str]:
    import os

    return {**os.environ, **holds.env(spec)}


def test_off_without_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(faults.ENV_HOLD, raising=False)
    monkeypatch.setenv(faults.ENV_DIR, str(tmp_path))
    faults.hold("before_trials")  # returns at once
    faults.announce("trial", "t000")
    assert list(tmp_path.iterdir()) == []
    assert faults.hold_env() == {faults.ENV_DIR: str(tmp_path)}


def test_a_process_waits_at_its_point_until_released_then_runs_on(tmp_path: Path) -> None:
    holds = Holds(tmp_path)
    log = tmp_path / "out.log"
    proc = _holder(holds, "after_checkpoint:t001:2", "after_checkpoint", "t001", 2, log)
    held = holds.wait("after_checkpoint:t001:2", proc, log)
    assert held == {"point": "after_checkpoint", "trial": "t001", "epoch": 2, "pid": proc.pid}
    assert proc.poll() is None  # still held
    holds.release("after_checkpoint:t001:2")
    assert proc.wait(timeout=60) == 0 and log.read_text().strip() == "on"
    # Once per directory: a second process (a restarted trial) is not held again.
    again = _holder(holds, "after_checkpoint:t001:2", "after_checkpoint", "t001", 2, log)
    assert again.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("spec", "point", "trial", "epoch"),
    [
        ("after_checkpoint:t001:2", "after_checkpoint", "t000", 2),  # another trial
        ("after_checkpoint:t001:2", "after_checkpoint", "t001", 3),  # another epoch
        ("mid_epoch", "after_checkpoint", "t001", 2),  # another point
        ("report", "before_trials", "", None),
    ],
)
def test_other_points_trials_and_epochs_run_on(
    tmp_path: Path, spec: str, point: str, trial: str, epoch
) -> None:
    proc = _holder(Holds(tmp_path), spec, point, trial, epoch)
    assert proc.wait(timeout=60) == 0
    assert not list(tmp_path.glob("*.held"))


def test_wildcards_match_any_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holds = Holds(tmp_path)
    holds.release("trial_ended:*")  # released in advance: the hold returns at once
    monkeypatch.setenv(faults.ENV_HOLD, "trial_ended:*")
    monkeypatch.setenv(faults.ENV_DIR, str(tmp_path))
    faults.hold("trial_ended", "t007")
    assert (tmp_path / "trial_ended-any.held").exists()


def test_an_unknown_point_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(faults.ENV_HOLD, "after_chekpoint")
    monkeypatch.setenv(faults.ENV_DIR, str(tmp_path))
    with pytest.raises(ValueError, match="unknown fault point 'after_chekpoint'"):
        faults.hold("report")


def test_announce_writes_the_pid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    monkeypatch.setenv(faults.ENV_HOLD, "report")
    monkeypatch.setenv(faults.ENV_DIR, str(tmp_path))
    faults.announce("trial", "t003")
    assert Holds(tmp_path).pid("trial", "t003") == os.getpid()
