"""A resumed sweep's ASHA rungs refilled from what MLflow recorded (raysweep.rungs), decided by
Ray Tune's own ASHA scheduler (no Ray session needed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raysweep.rungs import refill


@dataclass
class Trial:
    """What ASHA reads of a Tune trial: its id."""

    trial_id: str


def asha(mode: str = "max", metric: str = "test_acc") -> ASHAScheduler:
    """ASHA as raysweep makes it for 8 epochs, grace 1, reduction factor 2: rungs at 1, 2, 4."""
    return ASHAScheduler(
        time_attr="epoch", metric=metric, mode=mode, max_t=8, grace_period=1, reduction_factor=2
    )


def add(scheduler: ASHAScheduler, trial_id: str, history: dict[int, float]) -> Trial:
    """Tune adds a trial: the scheduler's own `on_trial_add`, then the refill."""
    trial = Trial(trial_id)
    scheduler.on_trial_add(None, trial)
    refill(scheduler, trial_id, history)
    return trial


def decide(scheduler: ASHAScheduler, trial: Trial, epoch: int, acc: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "test_acc": acc})


def test_each_rung_passed_gets_the_trials_value_at_its_epoch() -> None:
    scheduler = asha()
    trial = Trial("a")
    scheduler.on_trial_add(None, trial)
    assert refill(scheduler, "a", {1: 0.5, 2: 0.6, 3: 0.65}) == [2, 1]
    rungs = dict(scheduler._trial_info["a"]._rungs)
    assert (rungs[1]["a"], rungs[2]["a"]) == (0.5, 0.6) and "a" not in rungs[4]
    # A rung ASHA already has the trial at keeps what ASHA recorded.
    assert refill(scheduler, "a", {1: 0.1, 2: 0.1, 4: 0.7}) == [4]
    assert dict(scheduler._trial_info["a"]._rungs)[1]["a"] == 0.5


def test_the_trials_that_ended_before_the_resume_still_count() -> None:
    """Three trials reached rung 1 at 0.8-0.9 before the driver died: a new trial at 0.3 is
    stopped there, as it would have been; an ASHA that forgot them lets it go on."""
    refilled, forgot = asha(), asha()
    for i, acc in enumerate((0.8, 0.85, 0.9)):
        add(refilled, f"old{i}", {1: acc, 2: acc})
        add(forgot, f"old{i}", {})
    assert decide(refilled, add(refilled, "new", {}), 1, 0.3) == TrialScheduler.STOP
    assert decide(forgot, add(forgot, "new", {}), 1, 0.3) == TrialScheduler.CONTINUE


def test_a_trial_resumed_past_a_rung_is_not_judged_there_again() -> None:
    """Judged at rungs 1 and 2 before the resume (and kept on); its epoch 3, lower, decides
    nothing: ASHA judges a trial once per rung. Forgotten, it would be judged at rung 2 by its
    epoch-3 value, against the others."""
    refilled, forgot = asha(), asha()
    for i, acc in enumerate((0.5, 0.6, 0.7)):
        add(refilled, f"old{i}", {1: acc, 2: acc})
        add(forgot, f"old{i}", {1: acc, 2: acc})
    resumed = add(refilled, "resumed", {1: 0.9, 2: 0.9})
    assert decide(refilled, resumed, 3, 0.2) == TrialScheduler.CONTINUE
    assert decide(forgot, add(forgot, "resumed", {}), 3, 0.2) == TrialScheduler.STOP


def test_a_minimized_metric_is_recorded_negated_as_asha_records_it() -> None:
    scheduler = asha(mode="min", metric="test_loss")
    add(scheduler, "a", {1: 1.5, 2: 0.75})
    rungs = dict(scheduler._trial_info["a"]._rungs)
    assert (rungs[1]["a"], rungs[2]["a"]) == (-1.5, -0.75)


@pytest.mark.parametrize("history", [{}, {1: 0.5}])
def test_nothing_to_refill(history: dict[int, float]) -> None:
    """No history (a trial not run before), or no ASHA (FIFO): nothing changes."""
    assert refill(FIFOScheduler(), "a", history) == []
    scheduler = asha()
    assert refill(scheduler, "never-added", history) == []  # no bracket: Tune did not add it
    assert all(not recorded for b in scheduler._brackets for _, recorded in b._rungs)
