"""One ranking rule everywhere: the terminal summary, the console's "best so far", the report
tables, `raysweep best` and the parent run's best tag agree, and never pick a failed, diverged
or killed trial, however high its numbers."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from raysweep.progress import Console
from raysweep.ranking import UNRANKED_STATUSES, best, rank_value
from raysweep.report.tables import best_row, sort_rows
from raysweep.summary import best_outcome, summary_rows
from tests.test_summary import finished, outcome


@pytest.fixture
def outcomes():
    return [
        outcome(0, 1e-3, finished(0.80, 0.79, 0.6), status="finished", run_id="r0"),
        outcome(1, 1e-4, finished(0.99, 0.98, 0.1), status="diverged", run_id="r1"),
        outcome(2, 1e-5, finished(0.97, 0.97, 0.1), status="killed", run_id="r2"),
        outcome(3, 1e-2, {"test_acc": 0.995}, status="failed", run_id="r3"),
        outcome(4, 3e-3, finished(0.85, 0.84, 0.5), status="stopped", run_id="r4"),
        outcome(5, 3e-4, {"test_acc": float("nan")}, status="finished", run_id="r5"),
    ]


def test_unranked_trials_are_never_best_anywhere(outcomes) -> None:
    assert {"failed", "diverged", "killed"} == UNRANKED_STATUSES
    assert best_outcome(outcomes, "test_acc", "max").trial.trial_id == "t004"
    rows = summary_rows(outcomes, "test_acc", "max")
    assert [r["trial_id"] for r in rows][:2] == ["t004", "t000"]
    table = pd.DataFrame(rows)
    assert best_row(table, "test_acc", "max")["trial_id"] == "t004"
    # The report's order is the terminal's order.
    assert [r["trial_id"] for r in sort_rows(rows, "test_acc", "max")] == [
        r["trial_id"] for r in rows
    ]
    console = Console(stream=io.StringIO())
    assert console._best({o.trial.trial_id: o for o in outcomes}) == (0.85, "t004")


def test_nothing_rankable_means_no_best(outcomes) -> None:
    unranked = [o for o in outcomes if o.status in UNRANKED_STATUSES]
    assert best_outcome(unranked, "test_acc", "max") is None
    assert (
        best_row(pd.DataFrame(summary_rows(unranked, "test_acc", "max")), "test_acc", "max") is None
    )


def test_rank_value_prefers_the_best_epoch_and_ignores_non_finite() -> None:
    assert rank_value({"best_test_acc": 0.9, "test_acc": 0.8}, "test_acc") == 0.9
    assert rank_value({"best_test_acc": float("nan"), "test_acc": 0.8}, "test_acc") == 0.8
    assert rank_value({"test_loss": float("inf")}, "test_loss") is None
    items = [("a", 0.3), ("b", 0.1), ("c", 0.2)]
    low = best(items, "loss", "min", lambda i: ({"loss": i[1]}, "finished", i[0]))
    assert low == ("b", 0.1)
