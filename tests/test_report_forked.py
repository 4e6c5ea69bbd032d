"""Part of a report's figures drawn in a forked process (raysweep.report.forked): the same
files and figure records as drawn in one process; a child that fails, dies or hangs costs only
the time it was given, the caller then does the work itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from raysweep.report import figures as figures_module
from raysweep.report.build import write_report
from raysweep.report.forked import CAN_FORK, Forked
from tests.test_report_figures import ofat_sweep

pytestmark = pytest.mark.skipif(not CAN_FORK, reason="no os.fork here")


def _child_pid() -> int:
    return os.getpid()


def _fails() -> None:
    raise ValueError("no figure today")


def _dies() -> None:
    os._exit(3)


def _hangs() -> None:
    time.sleep(600)


def test_the_child_hands_back_what_it_returned() -> None:
    assert Forked(_child_pid).result(60) not in (None, os.getpid())
    assert Forked(sorted, [3, 1, 2]).result(60) == [1, 2, 3]


@pytest.mark.parametrize("work", [_fails, _dies])
def test_a_failed_child_answers_none(work) -> None:
    assert Forked(work).result(60) is None


def test_a_child_that_does_not_answer_in_time_is_killed() -> None:
    child = Forked(_hangs)
    started = time.monotonic()
    assert child.result(0.5) is None
    assert time.monotonic() - started < 30
    with pytest.raises(ChildProcessError):  # reaped: nothing left running
        os.waitpid(child.pid, os.WNOHANG)


def _records(report) -> dict:
    return {k: (p.path.name, p.panels, p.legends, p.title) for k, p in report.plots.items()}


def test_a_forked_overview_gives_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = write_report(ofat_sweep(), tmp_path / "alone")
    draw = figures_module.draw_overview
    drawn_by = tmp_path / "drawn-by"

    def noted(*args, **kwargs):
        with drawn_by.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return draw(*args, **kwargs)

    monkeypatch.setattr(figures_module, "draw_overview", noted)
    forked = write_report(ofat_sweep(), tmp_path / "forked", fork=True)
    pids = drawn_by.read_text().split()
    assert len(pids) == 1 and int(pids[0]) != os.getpid()  # drawn once, by the child
    assert _records(forked) == _records(alone)
    assert sorted(p.name for p in forked.files) == sorted(p.name for p in alone.files)
    assert all(p.is_file() and p.stat().st_size > 0 for p in forked.files)
    assert [s.title for s in forked.sections] == [s.title for s in alone.sections]


def test_an_overview_the_child_cannot_draw_is_drawn_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(Forked):
        def __init__(self, fn, *args) -> None:
            super().__init__(_fails)

    alone = write_report(ofat_sweep(), tmp_path / "alone")
    monkeypatch.setattr(figures_module, "Forked", Broken)
    report = write_report(ofat_sweep(), tmp_path / "broken", fork=True)
    assert _records(report) == _records(alone)
    assert report.plots["cost"].path.is_file()
