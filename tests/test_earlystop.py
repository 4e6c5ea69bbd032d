"""Early stopping: stops exactly after `patience` bad epochs, in the metric's direction."""

from __future__ import annotations

import copy

import pytest

from raysweep.earlystop import EarlyStopper, metric_goal
from raysweep.sections import EarlyStopSpec


def _feed(stopper: EarlyStopper, values: list[float], metric: str = "test_acc") -> list[bool]:
    return [stopper.update(epoch, {metric: v, "other": 0.0}) for epoch, v in enumerate(values)]


def test_stops_exactly_after_patience_bad_epochs() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=3))
    decisions = _feed(stopper, [0.5, 0.6, 0.6, 0.59, 0.55])
    assert decisions == [False, False, False, False, True]
    assert stopper.stopped_early
    assert stopper.best_value == 0.6
    assert stopper.best_epoch == 1


def test_an_improvement_resets_the_count() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=2))
    decisions = _feed(stopper, [0.5, 0.4, 0.6, 0.5, 0.7, 0.6, 0.6])
    assert decisions == [False, False, False, False, False, False, True]
    assert stopper.best_epoch == 4


def test_seed_003_stops_after_six_epochs_without_improvement() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=6, metric="test_acc"))
    values = [0.3, 0.5, 0.7] + [0.69] * 6
    decisions = _feed(stopper, values)
    assert decisions.index(True) == 8  # epochs 3..8 are the six bad ones
    assert not any(decisions[:8])
    assert stopper.best_epoch == 2


def test_never_stops_while_improving() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=1))
    assert not any(_feed(stopper, [0.1 * i for i in range(10)]))
    assert not stopper.stopped_early
    assert stopper.best_epoch == 9


def test_loss_metrics_are_minimized() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=2, metric="test_loss"))
    assert stopper.goal == "min"
    decisions = _feed(stopper, [1.0, 0.8, 0.9, 0.7, 0.75, 0.85], metric="test_loss")
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best_value == 0.7
    assert stopper.best_epoch == 3


def test_min_delta_counts_small_gains_as_bad() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=2, min_delta=0.05))
    assert _feed(stopper, [0.5, 0.52, 0.54]) == [False, False, True]
    assert stopper.best_value == 0.5

    lenient = EarlyStopper(EarlyStopSpec(patience=2, min_delta=0.0))
    assert _feed(lenient, [0.5, 0.52, 0.54, 0.6]) == [False] * 4


def test_min_delta_in_min_mode() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=2, metric="test_loss", min_delta=0.1))
    assert _feed(stopper, [1.0, 0.85, 0.8, 0.78], metric="test_loss") == [False] * 3 + [True]
    assert stopper.best_value == 0.85


def test_goal_argument_overrides_the_name() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=1, metric="test_acc"), goal="min")
    assert _feed(stopper, [0.5, 0.4, 0.45]) == [False, False, True]
    assert stopper.best_value == 0.4


def test_metric_direction_from_its_name() -> None:
    assert metric_goal("train_acc") == "max"
    assert metric_goal("train_loss") == "min"
    assert EarlyStopper(EarlyStopSpec(patience=1, metric="gap")).goal == "min"
    assert EarlyStopper(EarlyStopSpec(patience=1, metric="gap"), goal="max").goal == "max"
    with pytest.raises(ValueError, match="goal"):
        metric_goal("images_per_s")


def test_nan_is_never_an_improvement() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=2, metric="test_loss"))
    nan = float("nan")
    assert _feed(stopper, [nan, 1.0, nan, nan], metric="test_loss") == [False, False, False, True]
    assert stopper.best_epoch == 1


def test_missing_metric_is_a_clear_error() -> None:
    stopper = EarlyStopper(EarlyStopSpec(patience=1, metric="test_loss"))
    with pytest.raises(KeyError, match="test_loss"):
        stopper.update(0, {"test_acc": 0.5})


def test_state_round_trip_continues_identically() -> None:
    values = [0.5, 0.6, 0.58, 0.59, 0.57, 0.61, 0.6, 0.6, 0.6]
    spec = EarlyStopSpec(patience=3)

    straight = EarlyStopper(spec)
    expected = _feed(straight, values)

    first = EarlyStopper(spec)
    got = [first.update(e, {"test_acc": v}) for e, v in enumerate(values[:4])]
    state = copy.deepcopy(first.state_dict())
    second = EarlyStopper(spec)
    second.load_state_dict(state)
    assert second.bad_epochs == 2 and second.best_epoch == 1
    got += [second.update(e, {"test_acc": v}) for e, v in enumerate(values) if e >= 4]
    assert got == expected
    assert second.state_dict() == straight.state_dict()


def test_state_for_another_metric_is_refused() -> None:
    state = EarlyStopper(EarlyStopSpec(patience=1, metric="test_loss")).state_dict()
    with pytest.raises(ValueError, match="metric"):
        EarlyStopper(EarlyStopSpec(patience=1)).load_state_dict(state)
