"""A worker group's reports reach Tune from the trial's own thread, all of them, in order,
before the trainable returns (raysweep.train_reports; real threads and queues, no Ray)."""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace

import pytest

from raysweep.train_reports import CHECKPOINT_PATH_KEY, ForwardReports, fit_reporting


def _fit_reporting_epochs(reports: queue.Queue, epochs: int, then: object = "done"):
    """A stand-in for `trainer.fit()`: its controller reports `epochs` epochs through
    `ForwardReports`, then fit returns at once (the case Ray's own callback deadlocked on)."""
    callback = ForwardReports(reports)

    def fit() -> object:
        for epoch in range(1, epochs + 1):
            checkpoint = SimpleNamespace(path=f"/ckpt/{epoch}")
            callback.after_report(None, [{"epoch": epoch}, {"epoch": -1}], checkpoint)
        if isinstance(then, BaseException):
            raise then
        return then

    return fit


def test_every_report_is_made_on_the_calling_thread_in_order_before_fit_returns() -> None:
    reports: queue.Queue = queue.Queue(1)
    seen: list[tuple[dict, str]] = []
    caller = threading.current_thread().name

    def report(metrics: dict) -> None:
        seen.append((metrics, threading.current_thread().name))

    result = fit_reporting(_fit_reporting_epochs(reports, 5), reports, report)
    assert result == "done"
    assert [m["epoch"] for m, _ in seen] == [1, 2, 3, 4, 5]  # rank 0's, each once
    assert {name for _, name in seen} == {caller}
    assert seen[-1][0][CHECKPOINT_PATH_KEY] == "/ckpt/5"
    assert reports.empty()


def test_a_report_without_a_checkpoint_names_none() -> None:
    reports: queue.Queue = queue.Queue()
    ForwardReports(reports).after_report(None, [{"epoch": 1}], None)
    assert reports.get_nowait() == {"epoch": 1}


def test_what_fit_raises_is_raised_after_the_reports_it_made() -> None:
    reports: queue.Queue = queue.Queue(1)
    seen: list[int] = []
    fit = _fit_reporting_epochs(reports, 2, then=RuntimeError("no node offered a GPU"))
    with pytest.raises(RuntimeError, match="no node offered a GPU"):
        fit_reporting(fit, reports, lambda m: seen.append(m["epoch"]))
    assert seen == [1, 2]


def test_a_report_that_raises_ends_the_trial_there() -> None:
    """Tune stops a trial (ASHA) by raising inside `tune.report`: it reaches the trainable."""
    reports: queue.Queue = queue.Queue(1)

    def report(metrics: dict) -> None:
        if metrics["epoch"] == 2:
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        fit_reporting(_fit_reporting_epochs(reports, 4), reports, report)
