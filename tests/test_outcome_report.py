"""How `raysweep run` ends (raysweep.outcome_report): the lines after the sweep, the exit code."""

from __future__ import annotations

from typing import Any

from raysweep.config import TrialConfig
from raysweep.outcome_report import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    rerun_command,
    summarize,
)
from raysweep.plan import Trial
from raysweep.records import TrialOutcome

WHERE = "mlflow ui --backend-store-uri sqlite:////tmp/mlflow.db   then open http://x"
RERUN = "raysweep run sweep.yaml --set train.epochs=3"


def outcome(i: int, lr: float, status: str, acc: float | None = None, **kw: Any) -> TrialOutcome:
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "synthetic"},
            "model": {"name": "lenet"},
            "train": {"optimizer": {"lr": lr}},
        }
    )
    trial = Trial(f"t{i:03d}", ("main",), {"train.optimizer.lr": lr}, config)
    metrics = {} if acc is None else {"test_acc": acc, "best_test_acc": acc, "best_epoch": 2}
    return TrialOutcome(trial=trial, status=status, metrics=metrics, **kw)


def test_all_ended_normally_exits_0_with_the_table_best_first() -> None:
    end = summarize(
        [
            outcome(0, 1e-3, "finished", 0.8),
            outcome(1, 1e-2, "diverged"),
            outcome(2, 0.1, "stopped", 0.9),
        ],
        "test_acc",
        "max",
        WHERE,
        RERUN,
    )
    assert end.exit_code == EXIT_OK
    assert end.lines[0] == ""
    table = end.lines[1].splitlines()
    assert table[0].split()[:2] == ["trial_id", "status"]
    assert [row.split()[0] for row in table[1:]] == ["t002", "t000", "t001"]
    assert end.lines[2:] == ["", f"raysweep: results in MLflow: {WHERE}"]


def test_a_failed_trial_is_listed_with_its_last_error_line_and_exits_1() -> None:
    error = "Traceback (most recent call last):\n  File x\nValueError: no-such-activation\n\n"
    end = summarize(
        [outcome(0, 1e-3, "finished", 0.8), outcome(1, 1e-2, "failed", error=error)],
        "test_acc",
        "max",
        WHERE,
        RERUN,
    )
    assert end.exit_code == EXIT_FAILED
    assert end.lines[2:] == [
        "raysweep: trial t001 (lenet lr=0.01) failed: ValueError: no-such-activation",
        "",
        f"raysweep: results in MLflow: {WHERE}",
    ]


def test_unfinished_trials_exit_130_with_the_way_to_finish_them() -> None:
    end = summarize(
        [
            outcome(0, 1e-3, "failed"),  # no error text: its status stands in
            outcome(1, 1e-2, "killed"),
            outcome(2, 0.1, "killed"),
        ],
        "test_acc",
        "max",
        WHERE,
        RERUN,
    )
    assert end.exit_code == EXIT_INTERRUPTED == 130  # interrupted wins over failed
    assert end.lines[2:] == [
        "raysweep: trial t000 (lenet lr=1e-3) failed: failed",
        "",
        f"raysweep: results in MLflow: {WHERE}",
        f"raysweep: interrupted: 2 trials unfinished; finish them with: {RERUN} --resume",
    ]


def test_rerun_command_is_the_command_line_as_typed() -> None:
    assert rerun_command("exp/sweep.yaml", ()) == "raysweep run exp/sweep.yaml"
    assert (
        rerun_command("s.yaml", ("a=1", "b.c=[1, 2]"))
        == "raysweep run s.yaml --set a=1 --set b.c=[1, 2]"
    )


def test_a_trial_whose_process_was_lost_is_listed_in_a_few_words() -> None:
    error = (
        "The actor died unexpectedly before finishing this task.\n\tpid: 18747\nThe actor is "
        "dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit "
        "detail: Worker unexpectedly exits with a connection error code 2. Some common causes "
        "include: (1) the process was killed by the OOM killer due to high memory usage, ...\n"
    )
    end = summarize([outcome(0, 1e-3, "failed", error=error)], "test_acc", "max", WHERE, RERUN)
    assert end.lines[2] == (
        "raysweep: trial t000 (lenet lr=1e-3) failed: its process died "
        "(Ray: worker exit SYSTEM_ERROR)"
    )
