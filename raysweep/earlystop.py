"""Early stopping: end a trial once its watched metric stops improving.

`EarlyStopper` follows one metric (an `EarlyStopSpec`'s ``metric``, e.g. "test_acc") epoch by
epoch and says when ``patience`` epochs in a row brought no improvement larger than
``min_delta``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Goal = Literal["max", "min"]


def metric_goal(metric: str) -> Goal:
    """Direction of a metric from its name: "max" for ``*acc``, "min" for ``*loss`` and "gap"."""
    if metric.endswith("acc"):
        return "max"
    # gap = train_acc - test_acc (raysweep.train): a smaller generalization gap is better.
    if metric.endswith("loss") or metric == "gap":
        return "min"
    raise ValueError(
        f"cannot tell whether metric {metric!r} should go up or down "
        "(names ending in 'acc' are maximized, 'loss' and 'gap' minimized); "
        "pass goal='max' or 'min'"
    )


class EarlyStopper:
    """Watches ``spec.metric`` and says when to stop.

    `update(epoch, metrics)` returns True once ``spec.patience`` consecutive epochs have not
    improved on the best value by more than ``spec.min_delta``. A NaN value never improves.
    """

    def __init__(self, spec: Any, goal: Goal | None = None) -> None:
        if int(spec.patience) < 1:
            raise ValueError(f"early stop patience must be >= 1, got {spec.patience}")
        if goal is not None and goal not in ("max", "min"):
            raise ValueError(f"goal must be 'max' or 'min', got {goal!r}")
        self.metric: str = spec.metric
        self.patience: int = int(spec.patience)
        self.min_delta: float = float(spec.min_delta)
        self.goal: Goal = goal if goal is not None else metric_goal(self.metric)
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs: int = 0
        self.stopped_early: bool = False

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        if self.goal == "max":
            return value > self.best_value + self.min_delta
        return value < self.best_value - self.min_delta

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record `epoch`'s metrics; return True if training should stop now."""
        if self.metric not in metrics:
            raise KeyError(
                f"early stopping watches {self.metric!r}, which is not among the epoch "
                f"metrics {sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        if self._improves(value):
            self.best_value = value
            self.best_epoch = epoch
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_early = True
        return self.stopped_early

    def state_dict(self) -> dict[str, Any]:
        """State for checkpoints."""
        return {
            "metric": self.metric,
            "goal": self.goal,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output (the metric/goal/patience come from the spec)."""
        if state.get("metric", self.metric) != self.metric:
            raise ValueError(
                f"early-stop state is for metric {state['metric']!r}, this stopper watches "
                f"{self.metric!r}"
            )
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
