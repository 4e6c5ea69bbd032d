"""What a local Ray starts for a sweep (raysweep.ray_session.LocalRay, no Ray session): the
dashboard and its state API, and Ray's idle workers, only where a worker-group trial may run;
and one such Ray started for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from raysweep.config import SweepSpec, validate_spec
from raysweep.ray_session import RAY_ENV, LocalRay, ray_env
from raysweep.sweep import local_ray_for

INLINE = LocalRay(dashboard=False, prestart_workers=False)
EVERYTHING = LocalRay(dashboard=True, prestart_workers=True)

SWEEP: dict[str, Any] = {
    "name": "local",
    "dataset": {"name": "synthetic"},
    "model": {"name": "lenet"},
    "sweep": {
        "studies": [
            {"name": "one", "axes": {"train.optimizer.lr": [1.0e-3, 1.0e-2]}},
            {"name": "ddp", "resources": {"workers_per_trial": 2}},
        ]
    },
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
}


def spec(**changes: Any) -> SweepSpec:
    return validate_spec({**SWEEP, **changes}, "s.yaml")


def test_an_inline_sweep_starts_neither_the_dashboard_nor_idle_workers() -> None:
    only_one = {**SWEEP["sweep"], "studies": SWEEP["sweep"]["studies"][:1]}
    assert local_ray_for(spec(sweep=only_one)) == INLINE
    # `--study` with only inline trials in it, of a sweep that also has worker groups.
    assert local_ray_for(spec(), ("one",)) == INLINE


def test_a_worker_group_anywhere_in_the_sweep_keeps_them() -> None:
    assert local_ray_for(spec()) == EVERYTHING
    assert local_ray_for(spec(), ("ddp",)) == EVERYTHING
    executor = {"workers_per_trial": 1, "cpus_per_worker": 1, "executor": "torch_trainer"}
    only_one = {**SWEEP["sweep"], "studies": SWEEP["sweep"]["studies"][:1]}
    assert local_ray_for(spec(sweep=only_one, resources=executor)) == EVERYTHING


def test_the_dashboard_can_be_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYSWEEP_RAY_DASHBOARD", "1")
    only_one = {**SWEEP["sweep"], "studies": SWEEP["sweep"]["studies"][:1]}
    assert local_ray_for(spec(sweep=only_one)) == LocalRay(dashboard=True, prestart_workers=False)


def test_tune_keeps_only_its_json_logger_unless_the_user_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RAY_ENV["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert ray_env(local=True)["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    assert ray_env(local=True)["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "0"


def test_a_local_ray_runs_no_preemption_watcher_nor_train_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing preempts a node of a local Ray, nothing scrapes its metrics: both off there; on
    a cluster Ray Train's defaults stay; a value the user exported wins."""
    for var in ("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "RAY_TRAIN_METRICS_ENABLED"):
        monkeypatch.delenv(var, raising=False)
        assert ray_env(local=True)[var] == "0"
        assert var not in ray_env(local=False)
        monkeypatch.setenv(var, "1")
        assert ray_env(local=True)[var] == "1"


INLINE_RAY = """
import json, sys, ray
from ray._private import services
from ray._private.node import Node
from raysweep.ray_session import LocalRay, init_ray
before = (services.start_api_server, Node.start_monitor, Node.start_log_monitor)
init_ray(None, sys.argv[1] == "debug", LocalRay(dashboard=False, prestart_workers=False))
processes = sorted(ray._private.worker._global_node.all_processes)
answer = ray.get(ray.remote(lambda: 42).remote())
after = (services.start_api_server, Node.start_monitor, Node.start_log_monitor)
print(json.dumps({"processes": processes, "answer": answer, "restored": before == after}))
ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["quiet", "debug"])
def test_an_inline_sweeps_local_ray_starts_only_what_it_uses(tmp_path: Path, mode: str) -> None:
    """No dashboard process (not even the one Ray starts with include_dashboard=False), no
    autoscaler monitor, and a log monitor only for `--debug`, which shows workers' output
    (raysweep.ray_session.lean_head); Ray still runs tasks, and its functions are put back."""
    proc = subprocess.run(
        [sys.executable, "-c", INLINE_RAY, mode], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {"gcs_server", "raylet"} | ({"log_monitor"} if mode == "debug" else set())
    assert set(seen["processes"]) == expected
    assert seen["answer"] == 42 and seen["restored"]


STOPPING_RAY = """
import gc, json, weakref, ray
from raysweep import runner
from raysweep.ray_session import LocalRay, init_ray
gc.disable()  # as during a sweep's set-up: garbage waits for the collector
init_ray(None, False, LocalRay(dashboard=False, prestart_workers=False))

class Holder:  # garbage in a cycle holding a Ray object, as Tune's finished controller leaves
    pass

holder = Holder()
holder.ref, holder.me = ray.put(1), holder
freed = []
weakref.finalize(holder, freed.append, True)
del holder
seen = {}
shutdown = ray.shutdown

def watched_shutdown():
    seen.update(freed_before=bool(freed), collector_on=gc.isenabled())
    shutdown()

ray.shutdown = watched_shutdown
runner._stop_ray()()
seen["collector_on_after"] = gc.isenabled()
seen["ray_stopped"] = not ray.is_initialized()
print(json.dumps(seen))
"""


@pytest.mark.slow
def test_ray_stops_with_no_ray_object_left_for_the_collector(tmp_path: Path) -> None:
    """`runner._stop_ray` stops Ray on a thread of its own: garbage holding a Ray object is
    freed before (freed during the shutdown, on any thread, it would end the process) and the
    collector is off until Ray has stopped."""
    proc = subprocess.run(
        [sys.executable, "-c", STOPPING_RAY], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {
        "freed_before": True,
        "collector_on": False,
        "collector_on_after": True,
        "ray_stopped": True,
    }
