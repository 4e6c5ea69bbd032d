"""How a worker-group trial's results reach Tune: reported by the trial's own thread.

Ray's `TuneReportCallback` hands each Ray Train report to the Tune session's main thread
through a one-item actor queue, while the trial's thread waits in `trainer.fit()`. On Ray 2.60
that deadlocks when the last report and the end of `fit()` both fall between two of Tune's
`train()` calls (fast epochs, or a trial resumed near its end): the trainable's return puts
Tune's closing `__duplicate__` result in the session's one-item result queue, then the main
thread takes the last report from the actor queue and blocks for ever putting it behind that
one, as it is that queue's only reader. The trial never ends after its last epoch.

Here the trainer's controller puts each report in a queue of the trial's own, and the trial's
thread (the one Tune runs the trainable on) reports each with `tune.report` while `fit()` runs
on another thread, then every one left once it returns: Tune gets them in order, all before the
trainable ends, the way a function trainable's own reports reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ray.train.v2.api.callback import UserCallback

CHECKPOINT_PATH_KEY = "checkpoint_path"  # as Ray's TuneReportCallback names it
_T = TypeVar("_T")


class ReportQueue(Protocol):
    """What `fit_reporting` needs of a queue (`ray.util.queue.Queue`, or `queue.Queue`)."""

    def put(self, item: Any) -> None: ...

    def get(self) -> Any: ...


# The last item of a trial's report queue, put once `fit()` returned or raised (reports are
# dicts; the queue's items travel through its actor, so a plain string).
_FIT_ENDED = "raysweep: fit ended"


class ForwardReports(UserCallback):
    """Ray Train callback (run by the trainer's controller): each report of rank 0, with its
    checkpoint's path, into the trial's queue. The controller waits while the queue is full
    (one item), as it does with Ray's TuneReportCallback."""

    def __init__(self, reports: ReportQueue) -> None:
        self.reports = reports

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        result = dict(metrics[0])
        if checkpoint:
            result[CHECKPOINT_PATH_KEY] = checkpoint.path
        self.reports.put(result)


def report_queue() -> ReportQueue:
    """A one-item queue the trainer's controller (another process) can put into."""
    from ray.util.queue import Queue

    return Queue(1, actor_options={"num_cpus": 0})


def fit_reporting(
    fit: Callable[[], _T], reports: ReportQueue, report: Callable[[dict[str, Any]], None]
) -> _T:
    """Run `fit` on a thread of its own and `report` every item `ForwardReports` queues, on
    this thread, until `fit` ends; its result, or its exception raised here.

    The end is queued by `fit`'s thread after `fit` returned, so after the controller's last
    report: nothing reported is left behind."""
    result: list[_T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fit())
        except BaseException as exc:  # noqa: BLE001 - raised again on the reporting thread
            error.append(exc)
        finally:
            reports.put(_FIT_ENDED)

    threading.Thread(target=run, name="trainer-fit", daemon=True).start()
    while (item := reports.get()) != _FIT_ENDED:
        report(item)
    if error:
        raise error[0]
    return result[0]
