"""Tests for the sweep summary table (rows best first; CSV, Parquet, Markdown, text)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from raysweep.config import TrialConfig
from raysweep.plan import Trial
from raysweep.records import TrialOutcome
from raysweep.summary import best_outcome, summary_rows, summary_text

BASE = {"dataset": {"name": "synthetic"}, "model": {"name": "lenet"}}


def make_trial(i: int, lr: float, model: str = "lenet", studies: tuple[str, ...] = ("main",)):
    config = TrialConfig.model_validate(
        {**BASE, "model": {"name": model}, "train": {"optimizer": {"lr": lr}}}
    )
    return Trial(
        trial_id=f"t{i:03d}",
        studies=studies,
        overrides={"model.name": model, "train.optimizer.lr": lr},
        config=config,
    )


def outcome(i: int, lr: float, metrics: dict[str, Any], **kw: Any) -> TrialOutcome:
    model = kw.pop("model", "lenet")
    return TrialOutcome(trial=make_trial(i, lr, model), metrics=metrics, **kw)


def finished(best: float, final: float, loss: float, **extra: Any) -> dict[str, Any]:
    return {
        "best_test_acc": best,
        "best_epoch": 3,
        "test_acc": final,
        "train_acc": final + 0.05,
        "test_loss": loss,
        "gap": 0.05,
        "epoch": 4,
        **extra,
    }


@pytest.fixture
def outcomes() -> list[TrialOutcome]:
    return [
        outcome(
            0,
            1e-3,
            finished(0.80, 0.79, 0.6, train_time_s=60.04),
            status="finished",
            run_id="r0",
            started=100.0,  # the driver's clock is not the duration: the epochs' times are
            ended=190.0,
        ),
        outcome(1, 1e-4, finished(0.935, 0.93, 0.25), status="finished", run_id="r1", model="vgg"),
        outcome(2, 3e-3, {}, status="failed", error="boom"),
        outcome(3, 1e-2, finished(0.85, 0.84, 0.4), status="early_stopped", run_id="r3"),
    ]


def test_rows_best_first(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    assert [r["trial_id"] for r in rows] == ["t001", "t003", "t000", "t002"]  # no metrics last
    top = rows[0]
    assert list(top) == [
        "trial_id",
        "name",
        "status",
        "model.name",
        "train.optimizer.lr",
        "best_test_acc",
        "best_epoch",
        "test_acc",
        "train_acc",
        "test_loss",
        "gap",
        "epochs",
        "duration_s",
        "run_id",
        "studies",
    ]
    assert top["name"] == "vgg lr=1e-4"
    assert top["status"] == "finished"
    assert top["model.name"] == "vgg"
    assert top["train.optimizer.lr"] == "1e-4"  # formatted like the plan table
    assert top["best_test_acc"] == 0.935
    assert top["test_acc"] == 0.93
    assert top["epochs"] == 4
    assert top["run_id"] == "r1"
    assert top["studies"] == "main"
    assert top["duration_s"] is None  # no train_time_s
    assert rows[2]["duration_s"] == 60.0
    failed = rows[3]
    assert failed["status"] == "failed"
    for key in ("best_test_acc", "best_epoch", "test_acc", "test_loss", "gap", "epochs"):
        assert failed[key] is None
    assert failed["run_id"] == ""


def test_rows_rank_by_best_metric_then_final(outcomes: list[TrialOutcome]) -> None:
    # t004 has only a final test_acc (no best_*): it ranks by that
    outcomes.append(outcome(4, 0.1, {"test_acc": 0.9, "test_loss": 0.3}, status="stopped"))
    rows = summary_rows(outcomes, "test_acc", "max")
    assert [r["trial_id"] for r in rows] == ["t001", "t004", "t003", "t000", "t002"]


def test_rows_goal_min(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_loss", "min")
    assert [r["trial_id"] for r in rows] == ["t001", "t003", "t000", "t002"]
    rows = summary_rows(outcomes, "test_acc", "min")
    assert [r["trial_id"] for r in rows] == ["t000", "t003", "t001", "t002"]


def test_non_finite_and_missing_metrics_rank_last() -> None:
    outs = [
        outcome(0, 0.1, {"test_acc": math.nan}),
        outcome(1, 0.2, {"test_acc": 0.5}),
        outcome(2, 0.3, {"test_acc": "n/a"}),
        outcome(3, 0.4, {}),
    ]
    rows = summary_rows(outs, "test_acc", "max")
    assert [r["trial_id"] for r in rows] == ["t001", "t000", "t002", "t003"]  # ties by id
    assert best_outcome(outs, "test_acc", "max") is outs[1]


def test_best_outcome(outcomes: list[TrialOutcome]) -> None:
    assert best_outcome(outcomes, "test_acc", "max") is outcomes[1]
    assert best_outcome(outcomes, "test_acc", "min") is outcomes[0]
    assert best_outcome(outcomes, "test_loss", "min") is outcomes[1]
    assert best_outcome([outcomes[2]], "test_acc", "max") is None
    assert best_outcome([], "test_acc", "max") is None


def test_summary_rows_empty() -> None:
    assert summary_rows([], "test_acc") == []
    assert summary_text([]) == "(no trials)"


def test_summary_text(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    lines = summary_text(rows).splitlines()
    header = lines[0].split()
    assert "run_id" not in header and "studies" not in header and "name" not in header
    assert header[:3] == ["trial_id", "status", "model.name"]
    assert lines[1].split() == [
        "t001",
        "finished",
        "vgg",
        "1e-4",
        "93.50%",
        "3",
        "93.00%",
        "0.25",
        "5.00%",
        "4",
        "-",
    ]
    assert "85.00%" in summary_text(rows)
    assert lines[-1].split()[:2] == ["t002", "failed"]
    assert len(lines) == 1 + len(rows)
    assert lines[0].index("status") == lines[1].index("finished")  # aligned columns


def test_summary_text_limit(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    lines = summary_text(rows, limit=2).splitlines()
    assert len(lines) == 1 + 2 + 1
    assert lines[-1] == "... 2 more rows in summary.csv"
