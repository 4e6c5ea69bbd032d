"""Giving up on a trial that cannot be placed: `resources.placement_timeout_s`.

A trial waits for resources in one of two places. An inline trial (and a worker-group trial's
driver) is a Tune trial whose actor waits, PENDING, for its placement group: `PlacementGuard`,
a Tune scheduler around the sweep's own (FIFO or ASHA), watches those on the driver. A
worker-group trial's driver is placed at once (it needs only `trial_driver`) and its Ray Train
worker group waits inside `TorchTrainer.fit`: `WorkerGroupDeadline`, a Ray Train controller
callback, watches that one, Ray Train retrying the start every interval `fit` sets.

Either way, only a wait for resources that no live node has counts: when the time is up, the
trial's request is checked against the live nodes' totals (what they have, not what is free). A
trial that fits a node busy with other trials is queued, not stuck, and waits on; one that fits
none (its GPU node type cannot start: quota, capacity) fails with `PlacementTimeoutError`,
naming what is missing, and is recorded FAILED; the other trials go on.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train.v2._internal.execution.controller.state import (
    ReschedulingState,
    RunningState,
    SchedulingState,
)
from ray.tune.experiment import Trial as TuneTrial
from ray.tune.schedulers import TrialScheduler

from raysweep.resources import DRIVER_RESOURCE, TrialResources, live_nodes

# Ray Train retries a worker group's start after this long (raysweep's default, ray_session.py);
# `fit` shortens the interval so that the last retry falls on the trial's deadline.
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


class PlacementTimeoutError(RuntimeError):
    """A trial waited `resources.placement_timeout_s` for resources no live node has."""


# ---- what is missing (no Ray calls) --------------------------------------------------------


def _amounts(need: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in need.items())


def _fits(need: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in need.items())


def _capacity(need: dict[str, float], node: dict[str, float]) -> int:
    """How many bundles of `need` one idle node holds."""
    return int(min(node.get(k, 0.0) / v + 1e-9 for k, v in need.items()))


def shortfall(bundles: list[dict[str, float]], nodes: list[dict[str, float]]) -> str | None:
    """Why `nodes` (their totals: as if idle) could not hold `bundles` (one per worker, all
    alike, or one for a trial's driver); None when they could.

    Names the missing resource: `it needs 1 GPU per worker and no node offered it`."""
    wanted = [{k: float(v) for k, v in b.items() if v > 0} for b in bundles]
    wanted = [b for b in wanted if b]
    if not wanted:
        return None
    need = wanted[0]
    driver = DRIVER_RESOURCE in need
    subject, each = ("its driver needs", "") if driver else ("it needs", " per worker")
    seen = "; ".join(_amounts({k: n.get(k, 0.0) for k in need}) for n in nodes) or "none"
    most = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in need}
    absent = {k: v for k, v in need.items() if most[k] <= 0}
    if absent:
        them = "it" if len(absent) == 1 else "them"
        return f"{subject} {_amounts(absent)}{each} and no node offered {them}"
    for key, amount in need.items():
        if most[key] + 1e-9 < amount:
            return (
                f"{subject} {amount:g} {key}{each} and no node has that many "
                f"(the most on one node: {most[key]:g})"
            )
    if not any(_fits(need, n) for n in nodes):
        return (
            f"{subject} {_amounts(need)}{each} on one node and no node has all of that "
            f"(the live nodes have: {seen})"
        )
    held = sum(_capacity(need, n) for n in nodes)
    if held < len(wanted):
        return (
            f"its {len(wanted)} workers need {_amounts(need)} each and the live nodes "
            f"could hold {held} of them (they have: {seen})"
        )
    return None


def give_up_message(trial_id: str, timeout: float, why: str) -> str:
    """`t003 could not be placed in 600 s: <why>; <what to do>`."""
    return (
        f"{trial_id} could not be placed in {timeout:g} s: {why}; raise "
        "resources.placement_timeout_s if nodes take longer to start, or see why none was "
        "added (`ray status`, the autoscaler's log: instance quota or capacity)"
    )


# ---- inline trials and trial drivers: a Tune scheduler -------------------------------------


class PlacementGuard(TrialScheduler):
    """The sweep's scheduler (`inner`: FIFO or ASHA, which decides everything else), failing a
    trial that has been PENDING `placement_timeout_s` (its run settings) for resources no live
    node has, or that its driver said could not be placed. As Tune adds a trial, ASHA gets
    back what an earlier run of the sweep recorded of it (`raysweep.rungs`).

    A scheduler because Tune hands schedulers its controller, every step; failing a pending
    trial is what Tune itself does when a trial's actor cannot be created."""

    def __init__(self, inner: TrialScheduler) -> None:
        super().__init__()
        self.inner = inner
        self._waiting: dict[str, float] = {}  # Tune trial id -> when its wait began
        self._given_up: dict[str, str] = {}  # Tune trial id -> its driver's PlacementTimeoutError

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the Tuner: a restored sweep's trials start waiting afresh.
        return {**self.__dict__, "_waiting": {}, "_given_up": {}}

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: TuneTrial) -> None:
        from raysweep.rungs import refill_from_record

        self.inner.on_trial_add(tune_controller, trial)
        refill_from_record(self.inner, trial.trial_id, _trial_id(trial))

    def on_trial_error(self, tune_controller: Any, trial: TuneTrial) -> None:
        # Also called as Tune requeues a failed trial to retry it: a worker group that could
        # not be placed is not retried (it would wait as long again).
        reason = placement_error(trial)
        if reason is not None:
            self._given_up[trial.trial_id] = reason
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: TuneTrial, result: dict) -> str:
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: TuneTrial, result: dict) -> None:
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: TuneTrial) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> TuneTrial | None:
        self._expire(tune_controller)
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)

    def _expire(self, tune_controller: Any) -> None:
        now = time.monotonic()
        for trial in list(tune_controller.get_trials()):
            if trial.status != TuneTrial.PENDING:
                self._waiting.pop(trial.trial_id, None)
                continue
            since = self._waiting.setdefault(trial.trial_id, now)
            reason = self._given_up.pop(trial.trial_id, None)
            timeout = trial.config.get("run", {}).get("placement_timeout_s")
            if reason is None and timeout is not None and now - since >= timeout:
                why = shortfall(trial.placement_group_factory.bundles, live_nodes())
                if why is None:
                    self._waiting[trial.trial_id] = now  # it fits a busy node: queued
                    continue
                reason = give_up_message(_trial_id(trial), timeout, why)
            if reason is not None:
                self._fail(tune_controller, trial, reason)

    def _fail(self, tune_controller: Any, trial: TuneTrial, reason: str) -> None:
        """Record the trial FAILED (creating its MLflow run: it may never have started), then
        end it in Tune as Tune ends a trial whose actor could not be created."""
        from raysweep.recorder import current_recorder

        recorder = current_recorder()
        out = recorder.outcomes.get(_trial_id(trial))
        if out is None:  # a point an adaptive search made that never started
            from raysweep.plan import Trial
            from raysweep.records import TrialOutcome

            out = recorder.outcomes[_trial_id(trial)] = TrialOutcome(
                Trial.from_json(trial.config["trial"])
            )
        if not (out.recorded or out.status.ended):
            recorder.record_ended(out, {}, error=reason)
            out.recorded = True  # recorded: Tune's error event below is not recorded again
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        trial.init_local_path()  # where Tune writes the error
        if trial in controller._staged_trials:
            controller._unstage_trial_with_resources(trial)
        controller._process_trial_failure(trial, PlacementTimeoutError(reason))
        self._waiting.pop(trial.trial_id, None)
        self._given_up.pop(trial.trial_id, None)  # (set again by on_trial_error just now)


def _trial_id(trial: TuneTrial) -> str:
    return str(trial.config.get("trial", {}).get("trial_id", trial.trial_id))


def placement_error(trial: TuneTrial) -> str | None:
    """The message of the trial's last error if it was a PlacementTimeoutError."""
    import cloudpickle

    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).is_file():
        return None
    try:
        error = cloudpickle.loads(Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - an error Tune could not describe is not ours
        return None
    cause = getattr(error, "cause", error)
    return str(cause) if isinstance(cause, PlacementTimeoutError) else None


# ---- worker groups: a Ray Train controller callback ----------------------------------------


class WorkerGroupDeadline(ControllerCallback):
    """Fails a TorchTrainer whose worker group has waited `timeout` seconds for resources no
    live node has (Ray Train itself retries the start forever)."""

    def __init__(self, trial_id: str, timeout: float, per_worker: dict[str, float], workers: int):
        self.trial_id = trial_id
        self.timeout = timeout
        self.bundles = [dict(per_worker)] * workers
        self._since: float | None = None

    def after_controller_state_update(self, previous_state: Any, current_state: Any) -> None:
        if isinstance(current_state, RunningState) or current_state.is_terminal():
            self._since = None
            return
        now = time.monotonic()
        if isinstance(current_state, SchedulingState) and self._since is None:
            self._since = now
        if not isinstance(current_state, ReschedulingState) or self._since is None:
            return
        failure = getattr(current_state.training_failed_error, "controller_failure", None)
        if not isinstance(failure, WorkerGroupStartupTimeoutError):
            return
        if now - self._since < self.timeout * 0.999:
            return
        why = shortfall(self.bundles, live_nodes())
        if why is None:
            self._since = now  # it fits busy nodes: queued
            return
        # Raised here, the controller ends the run with it (not a retryable error).
        raise PlacementTimeoutError(give_up_message(self.trial_id, self.timeout, why))


def deadline_callbacks(trial_id: str, timeout: float | None, req: TrialResources) -> list[Any]:
    """The Ray Train callbacks a trial's TorchTrainer gets: its placement deadline, if any."""
    if timeout is None:
        return []
    return [WorkerGroupDeadline(trial_id, timeout, req.per_worker, req.workers)]


def fit(trainer: Any, timeout: float | None) -> Any:
    """`trainer.fit()`, retrying the worker group's start often enough to give up on time;
    a worker group that could not be placed raises PlacementTimeoutError itself."""
    from ray.train.v2.api.exceptions import ControllerError

    if timeout is not None:
        # Propagated to the trainer's controller (Ray Train passes it on from this process).
        interval = float(os.environ.get(START_TIMEOUT_ENV, "300"))
        os.environ[START_TIMEOUT_ENV] = f"{timeout / math.ceil(timeout / interval):g}"
    try:
        return trainer.fit()
    except ControllerError as exc:
        if isinstance(exc.controller_failure, PlacementTimeoutError):
            raise exc.controller_failure from None
        raise
