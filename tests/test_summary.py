"""Tests for the sweep summary table (rows best first; CSV, Parquet, Markdown, text)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from raysweep.config import TrialConfig
from raysweep.plan import Trial
from raysweep.summary import (
    best_outcome,
    markdown_table,
    summary_rows,
    table_columns,
    text_table,
    write_summary,
)
from raysweep.sweep import TrialOutcome

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
            finished(0.80, 0.79, 0.6),
            status="finished",
            run_id="r0",
            started=100.0,
            ended=160.04,
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
    assert top["duration_s"] is None  # no start/end times
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
    assert table_columns([]) == []
    assert markdown_table([]) == "(no trials)\n"
    assert text_table([]) == "(no trials)"


def test_markdown_table(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    md = markdown_table(rows)
    lines = md.splitlines()
    cols = table_columns(rows)
    assert "run_id" not in cols and "studies" not in cols and "name" not in cols
    assert "train_acc" not in cols
    assert lines[0] == "| " + " | ".join(cols) + " |"
    assert lines[1] == "|" + "---|" * len(cols)
    assert len(lines) == 2 + len(rows)
    assert lines[2] == (
        "| t001 | finished | vgg | 1e-4 | 93.50% | 3 | 93.00% | 0.25 | 5.00% | 4 | - |"
    )
    assert "| t000 | finished | lenet | 1e-3 | 80.00% | 3 | 79.00% | 0.6 | 5.00% | 4 | 60 |" in md
    assert lines[-1] == "| t002 | failed | lenet | 3e-3 | - | - | - | - | - | - | - |"
    assert md.endswith("\n")


def test_text_table(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    text = text_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == table_columns(rows)
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
    assert "85.00%" in text
    assert len(lines) == 1 + len(rows)
    assert lines[0].index("status") == lines[1].index("finished")  # aligned columns


def test_text_table_limit(outcomes: list[TrialOutcome]) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    text = text_table(rows, limit=2)
    lines = text.splitlines()
    assert len(lines) == 1 + 2 + 1
    assert lines[-1] == "... 2 more rows in summary.csv"


def test_write_summary_round_trips(outcomes: list[TrialOutcome], tmp_path: Path) -> None:
    rows = summary_rows(outcomes, "test_acc", "max")
    out = tmp_path / "nested" / "summary"
    paths = write_summary(rows, out)
    assert [p.name for p in paths] == ["summary.csv", "summary.parquet", "summary.md"]
    assert all(p.parent == out and p.is_file() for p in paths)

    with (out / "summary.csv").open(newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [r["trial_id"] for r in back] == ["t001", "t003", "t000", "t002"]
    assert list(back[0]) == list(rows[0])
    assert float(back[0]["best_test_acc"]) == 0.935
    assert back[0]["train.optimizer.lr"] == "1e-4"
    assert back[3]["best_test_acc"] == ""  # None -> empty cell

    table = pq.read_table(out / "summary.parquet")
    assert table.column_names == list(rows[0])
    assert table.num_rows == 4
    assert table.to_pylist() == rows

    assert (out / "summary.md").read_text() == markdown_table(rows)


def test_write_summary_with_no_rows(tmp_path: Path) -> None:
    paths = write_summary([], tmp_path)
    assert paths == [tmp_path / "summary.md"]
    assert (tmp_path / "summary.md").read_text() == "(no trials)\n"
    assert not (tmp_path / "summary.csv").exists()
