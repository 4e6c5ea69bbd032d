"""`resources.placement_timeout_s` without Ray running: what a trial's request lacks on the live
nodes (the message names it), the sweep file's field, and the worker-group start interval `fit`
gives Ray Train. The end-to-end behaviour (a trial no node can take fails, the others finish,
both executors) is in tests/test_multinode.py."""

from __future__ import annotations

import pytest

from raysweep.config import validate_spec
from raysweep.errors import ConfigError
from raysweep.placement import START_TIMEOUT_ENV, fit, give_up_message, shortfall

HEAD = {"CPU": 0.0, "trial_driver": 10000.0, "memory": 3e10}
G5 = {"CPU": 4.0, "GPU": 1.0, "memory": 1.6e10}


def test_a_request_some_live_node_can_hold_is_no_shortfall() -> None:
    assert shortfall([{"CPU": 4.0, "GPU": 1.0}], [HEAD, G5]) is None
    assert shortfall([{"CPU": 1.0, "GPU": 0.0}], [G5]) is None  # zero amounts ask for nothing
    assert shortfall([{"CPU": 0.0, "trial_driver": 1.0}], [HEAD, G5]) is None
    assert shortfall([{"CPU": 2.0, "GPU": 1.0}] * 2, [G5, G5]) is None  # a worker per node
    assert shortfall([], [HEAD]) is None


def test_a_resource_no_node_has_is_named() -> None:
    # The case: GPU workers asked for, the GPU node type never starts.
    assert shortfall([{"CPU": 1.0, "GPU": 1.0}], [HEAD, {"CPU": 8.0}]) == (
        "it needs 1 GPU per worker and no node offered it"
    )
    assert shortfall([{"CPU": 1.0, "GPU": 1.0}], [HEAD]) == (  # cluster.yaml's head: CPU 0
        "it needs 1 CPU, 1 GPU per worker and no node offered them"
    )
    assert shortfall([{"CPU": 8.0, "GPU": 1.0}], [HEAD, G5]) == (
        "it needs 8 CPU per worker and no node has that many (the most on one node: 4)"
    )
    # A worker group's driver (its Tune trial) on a cluster whose head lacks trial_driver.
    assert shortfall([{"CPU": 0.0, "trial_driver": 1.0}], [G5]) == (
        "its driver needs 1 trial_driver and no node offered it"
    )


def test_resources_on_different_nodes_and_a_gang_too_big_are_explained() -> None:
    cpu_only, gpu_small = {"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}
    assert shortfall([{"CPU": 4.0, "GPU": 1.0}], [cpu_only, gpu_small]) == (
        "it needs 4 CPU, 1 GPU per worker on one node and no node has all of that "
        "(the live nodes have: 8 CPU, 0 GPU; 1 CPU, 1 GPU)"
    )
    assert shortfall([{"CPU": 2.0, "GPU": 1.0}] * 3, [HEAD, G5, G5]) == (
        "its 3 workers need 2 CPU, 1 GPU each and the live nodes could hold 2 of them "
        "(they have: 0 CPU, 0 GPU; 4 CPU, 1 GPU; 4 CPU, 1 GPU)"
    )


def test_the_message_says_which_trial_how_long_and_what_to_do() -> None:
    text = give_up_message("t003", 600.0, "it needs 1 GPU per worker and no node offered it")
    assert text.startswith(
        "t003 could not be placed in 600 s: it needs 1 GPU per worker and no node offered it; "
    )
    assert "resources.placement_timeout_s" in text and "ray status" in text


def _spec(resources: dict) -> dict:
    return {"name": "s", "dataset": {"name": "digits"}, "model": {"name": "lenet"}, **resources}


def test_placement_timeout_defaults_to_900_s_and_null_waits_forever() -> None:
    assert validate_spec(_spec({})).resources.placement_timeout_s == 900.0
    spec = validate_spec(_spec({"resources": {"placement_timeout_s": None}}))
    assert spec.resources.placement_timeout_s is None
    spec = validate_spec(_spec({"resources": {"placement_timeout_s": 60}}))
    assert spec.resources.placement_timeout_s == 60.0
    with pytest.raises(ConfigError, match="resources.placement_timeout_s"):
        validate_spec(_spec({"resources": {"placement_timeout_s": 0}}))


def test_a_study_of_its_own_resources_inherits_the_sweep_s_timeout() -> None:
    spec = validate_spec(
        _spec(
            {
                "resources": {"placement_timeout_s": 60},
                "sweep": {"studies": [{"name": "a", "resources": {"cpus_per_worker": 2}}]},
            }
        )
    )
    assert spec.study_resources(spec.sweep.studies[0]).cpus_per_worker == 2


class _Trainer:
    def __init__(self) -> None:
        self.interval: str | None = None

    def fit(self) -> str:
        import os

        self.interval = os.environ.get(START_TIMEOUT_ENV)
        return "result"


@pytest.mark.parametrize(
    ("timeout", "interval", "expected"),
    [(900.0, "300", "300"), (1000.0, "300", "250"), (5.0, "300", "5"), (None, "300", "300")],
)
def test_fit_retries_the_worker_group_start_so_the_last_retry_falls_on_the_deadline(
    monkeypatch: pytest.MonkeyPatch, timeout: float | None, interval: str, expected: str
) -> None:
    monkeypatch.setenv(START_TIMEOUT_ENV, interval)
    trainer = _Trainer()
    assert fit(trainer, timeout) == "result"
    assert trainer.interval == expected


# ---- the two watchers, driven by hand (fake clock, fake live nodes) ------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    import raysweep.placement as placement

    fake = _Clock()
    monkeypatch.setattr(placement.time, "monotonic", fake)
    return fake


def _nodes(monkeypatch: pytest.MonkeyPatch, nodes: list[dict[str, float]]) -> None:
    import raysweep.placement as placement

    monkeypatch.setattr(placement, "live_nodes", lambda: nodes)


class _PGF:
    def __init__(self, bundles: list[dict[str, float]]) -> None:
        self.bundles = bundles


class _TuneTrial:
    def __init__(self, trial_id: str, bundle: dict[str, float], timeout: float | None) -> None:
        from ray.tune.experiment import Trial

        self.trial_id = f"abc_{trial_id}"
        self.status = Trial.PENDING
        self.config = {"trial": {"trial_id": trial_id}, "run": {"placement_timeout_s": timeout}}
        self.placement_group_factory = _PGF([bundle])


class _Controller:
    def __init__(self, trials: list[_TuneTrial]) -> None:
        self.trials = trials

    def get_trials(self) -> list[_TuneTrial]:
        return self.trials


def _guard(failed: list[tuple[str, str]]):
    from ray.tune.schedulers import FIFOScheduler

    from raysweep.placement import PlacementGuard

    guard = PlacementGuard(FIFOScheduler())
    guard._fail = lambda controller, trial, reason: failed.append((trial.trial_id, reason))
    return guard


def test_the_guard_fails_a_trial_pending_too_long_for_a_gpu_no_node_has(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nodes(monkeypatch, [{"CPU": 4.0}])
    failed: list[tuple[str, str]] = []
    guard = _guard(failed)
    gpu = _TuneTrial("t003", {"CPU": 1.0, "GPU": 1.0}, 600.0)
    forever = _TuneTrial("t004", {"CPU": 1.0, "GPU": 1.0}, None)
    controller = _Controller([gpu, forever])
    guard.choose_trial_to_run(controller)  # their wait begins
    clock.now += 599.0
    guard.choose_trial_to_run(controller)
    assert failed == []
    clock.now += 1.0
    guard.choose_trial_to_run(controller)
    assert failed == [
        (
            "abc_t003",
            give_up_message("t003", 600.0, "it needs 1 GPU per worker and no node offered it"),
        )
    ]  # t004 (placement_timeout_s: null) waits on


def test_the_guard_lets_a_trial_that_fits_a_busy_node_wait_and_restarts_the_clock(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes: list[dict[str, float]] = [{"CPU": 4.0, "GPU": 1.0}]  # busy with another trial
    _nodes(monkeypatch, nodes)
    failed: list[tuple[str, str]] = []
    guard = _guard(failed)
    trial = _TuneTrial("t001", {"CPU": 1.0, "GPU": 1.0}, 60.0)
    controller = _Controller([trial])
    guard.choose_trial_to_run(controller)
    clock.now += 60.0
    guard.choose_trial_to_run(controller)
    assert failed == []  # queued, not stuck
    nodes.clear()  # then the GPU node is gone (spot reclaim) and none comes back
    clock.now += 59.0
    guard.choose_trial_to_run(controller)
    assert failed == []  # its clock restarted when the queue was seen
    clock.now += 1.0
    guard.choose_trial_to_run(controller)
    assert [trial_id for trial_id, _ in failed] == ["abc_t001"]


def test_a_trial_that_starts_stops_waiting_and_a_new_wait_starts_afresh(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.tune.experiment import Trial

    _nodes(monkeypatch, [{"CPU": 4.0}])
    failed: list[tuple[str, str]] = []
    guard = _guard(failed)
    trial = _TuneTrial("t002", {"CPU": 1.0, "GPU": 1.0}, 60.0)
    controller = _Controller([trial])
    guard.choose_trial_to_run(controller)
    clock.now += 50.0
    trial.status = Trial.RUNNING  # placed after all
    guard.choose_trial_to_run(controller)
    clock.now += 50.0
    trial.status = Trial.PENDING  # its node died; Tune requeued it
    guard.choose_trial_to_run(controller)
    clock.now += 59.0
    guard.choose_trial_to_run(controller)
    assert failed == []


def _states():
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
    from ray.train.v2._internal.execution.controller.state import (
        ReschedulingState,
        RunningState,
        SchedulingState,
    )
    from ray.train.v2.api.exceptions import ControllerError

    timed_out = ReschedulingState(ControllerError(WorkerGroupStartupTimeoutError(num_workers=2)))
    return SchedulingState(scaling_decision=None), timed_out, RunningState()


def test_a_worker_group_that_no_node_can_take_ends_its_run_on_the_deadline(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raysweep.placement import PlacementTimeoutError, WorkerGroupDeadline

    _nodes(monkeypatch, [{"CPU": 0.0, "trial_driver": 100.0}, {"CPU": 4.0}])
    scheduling, timed_out, _ = _states()
    deadline = WorkerGroupDeadline("t005", 600.0, {"CPU": 2.0, "GPU": 1.0}, 2)
    deadline.after_controller_state_update(None, scheduling)
    clock.now += 300.0  # Ray Train's first retry: too early
    deadline.after_controller_state_update(scheduling, timed_out)
    deadline.after_controller_state_update(timed_out, scheduling)
    clock.now += 300.0
    with pytest.raises(PlacementTimeoutError) as raised:
        deadline.after_controller_state_update(scheduling, timed_out)
    assert str(raised.value) == give_up_message(
        "t005", 600.0, "it needs 1 GPU per worker and no node offered it"
    )


def test_a_worker_group_that_fits_busy_nodes_or_got_placed_waits_on(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raysweep.placement import WorkerGroupDeadline

    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    _nodes(monkeypatch, nodes)
    scheduling, timed_out, running = _states()
    deadline = WorkerGroupDeadline("t006", 60.0, {"CPU": 2.0, "GPU": 1.0}, 2)
    deadline.after_controller_state_update(None, scheduling)
    clock.now += 60.0
    deadline.after_controller_state_update(scheduling, timed_out)  # queued: no error
    deadline.after_controller_state_update(timed_out, running)
    nodes.pop()  # a node died: Ray Train restarts the group, which now fits no longer
    deadline.after_controller_state_update(running, scheduling)
    clock.now += 59.0
    deadline.after_controller_state_update(scheduling, timed_out)  # the wait began anew
