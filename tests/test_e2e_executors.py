"""Both executors in one sweep file, end to end (real Ray, MLflow and training on digits): one
sweep through what each kind of trial must survive, then `--study`.

Five studies, each its own resources, one trial each, one at a time:

- t000 inline and t003 a Ray Train TorchTrainer (`executor: torch_trainer`), each with
  `train.max_failures: 2`: the process driving it is killed after its epoch-1 checkpoint;
  Tune restarts it and it goes on from that checkpoint.
- t001 inline and t004 a TorchTrainer with `train.max_failures: 0` (set per study): the same
  kill fails it at once, recorded FAILED; the sweep goes on.
- t002 two DDP workers (gloo on CPU, a TorchTrainer job): the driver's whole session is killed
  after its epoch-2 checkpoint; `--resume` finds its TorchTrainer run again by name, goes on
  from its checkpoint, and it trains as well as the same config on one worker. The TorchTrainer
  kills come after it, in the resumed run: a killed worker group's placement group is freed by
  Ray Train's cleaner some time after (seconds; once, on a loaded machine, not within minutes),
  and the DDP trial needs both CPUs. (raysweep now frees it itself, raysweep.left_groups, but
  racing Ray Train's cleaner; tests/test_left_groups.py checks that part on its own.)

Then `--study inline-retried` runs that study alone, under the trial id the whole plan gives
it, as a second parent run in the same store.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import library_log, only_raysweeps_lines, run_cli, start_cli
from tests.holds import Holds, kill_session

pytestmark = pytest.mark.slow

EPOCHS = 3
DDP_EPOCHS = 4
TORCH_TRAINER = {"executor": "torch_trainer"}
SWEEP = {
    "name": "executors",
    "model": {"name": "lenet"},
    "train": {"epochs": EPOCHS, "batch_size": 64, "optimizer": {"name": "adam", "lr": 3.0e-3}},
    "sweep": {
        "studies": [
            {"name": "inline-retried", "set": {"train.max_failures": 2}},
            {"name": "inline-no-retry", "set": {"train.max_failures": 0}},
            {
                "name": "ddp",
                "set": {"train.epochs": DDP_EPOCHS},
                "resources": {"workers_per_trial": 2},
            },
            {
                "name": "trainer-retried",
                "set": {"train.max_failures": 2},
                "resources": TORCH_TRAINER,
            },
            {
                "name": "trainer-no-retry",
                "set": {"train.max_failures": 0},
                "resources": TORCH_TRAINER,
            },
        ]
    },
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent": 1},
}
RETRIED, FAILED, DDP = ("t000", "t003"), ("t001", "t004"), "t002"
EXECUTORS = {
    "t000": "inline",
    "t001": "inline",
    "t002": "torch_trainer",
    "t003": "torch_trainer",
    "t004": "torch_trainer",
}
# Each loss is one raysweep line: which trial, what happened, what happens next. Ray's
# "A worker died ..." paragraph is in the run's log file, not on the terminal.
LOST = "its process died (Ray: worker exit SYSTEM_ERROR)"


def _children(client, name: str, parent_id: str | None = None) -> dict[str, object]:
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    return {
        r.data.tags["raysweep.trial_id"]: r
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
        and (parent_id is None or r.data.tags["mlflow.parentRunId"] == parent_id)
    }


def _parents(client, name: str) -> list:
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def _kill_trials(holds: Holds, proc, log: Path, retried: str, failed: str) -> None:
    """Kill the process driving each trial once it is held after its epoch-1 checkpoint."""
    for trial in (retried, failed):
        point = f"after_checkpoint:{trial}:1"
        holds.wait(point, proc, log)
        os.kill(holds.pid("trial", trial), signal.SIGKILL)


def _said_the_losses(text: str, retried: str, failed: str) -> None:
    """One retry, then the trial going on from its checkpoint; one failure, no retry."""
    retries = [line for line in text.splitlines() if f"{retried} retrying" in line]
    assert len(retries) == 1, text
    assert retries[0].endswith(f"] {retried} retrying  failure 1 of 2 allowed: {LOST}"), text
    assert f"{retried} resumed   from its epoch-1 checkpoint" in text, text
    assert f"{retried} finished" in text, text
    assert f"{failed} retrying" not in text, text
    assert f"{failed} FAILED    {LOST}; no retry left (train.max_failures 0)" in text, text
    assert "A worker died" not in text and "(raylet)" not in text, text
    assert "worker died or was killed" in library_log(text).read_text()
    only_raysweeps_lines(text)


def test_both_executors_survive_their_kills_in_one_sweep_then_one_study(
    write_sweep, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_sweep(SWEEP)
    storage = tmp_path / "ray"
    run = ["run", str(spec), "--storage", str(storage)]
    holds = Holds(tmp_path / "holds")
    end = f"after_checkpoint:{DDP}:2"  # rank 0 handed Ray its epoch-2 checkpoint
    log = tmp_path / "first.log"
    env = {"RAYSWEEP_LOG_DIR": str(tmp_path / "logs")}
    points = [f"after_checkpoint:{t}:1" for t in ("t000", "t001")]
    proc = start_cli(run, tmp_path, log, env={**holds.env(*points, end), **env})
    _kill_trials(holds, proc, log, "t000", "t001")
    holds.wait(end, proc, log)
    kill_session(proc)
    first = log.read_text()
    assert (
        "5 trials, resources per study (inline-retried: 1 worker x (1 CPU) (inline); "
        "inline-no-retry: 1 worker x (1 CPU) (inline); "
        "ddp: 2 workers x (1 CPU) (torch_trainer); "
        "trainer-retried: 1 worker x (1 CPU) (torch_trainer); "
        "trainer-no-retry: 1 worker x (1 CPU) (torch_trainer)), up to 1 at a time" in first
    ), first
    _said_the_losses(first, "t000", "t001")

    log = tmp_path / "resume.log"
    points = [f"after_checkpoint:{t}:1" for t in ("t003", "t004")]
    proc = start_cli([*run, "--resume"], tmp_path, log, env={**holds.env(*points), **env})
    _kill_trials(holds, proc, log, "t003", "t004")
    assert proc.wait(timeout=900) == 1, log.read_text()  # two trials failed
    resumed = log.read_text()
    assert "Traceback" not in resumed, resumed
    _said_the_losses(resumed, "t003", "t004")
    assert f"{DDP} resumed   from its epoch-" in resumed, resumed
    assert f"{DDP} epoch {DDP_EPOCHS}/{DDP_EPOCHS}" in resumed, resumed
    assert f"{DDP} finished" in resumed, resumed
    assert "t000 epoch" not in resumed and "t001 epoch" not in resumed, resumed  # done before
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = _parents(client, "executors")
    experiment = storage / parent.data.tags["raysweep.experiment_dir"]
    for trial in FAILED:
        assert f"raysweep: trial {trial} (lenet max_failures=0) failed: {LOST}" in resumed
    # t001 failed in the first run: still failed, in the words of its failure, and not trained
    # again, though Tune's saved state (every ~10 s) can be older than the failure.
    results = (experiment / "t001" / "result.json").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in results if line] in ([], [1]), results

    assert parent.data.params["executor"] == (
        "inline-retried: inline; inline-no-retry: inline; ddp: torch_trainer; "
        "trainer-retried: torch_trainer; trainer-no-retry: torch_trainer"
    )
    assert "raysweep.selected_studies" not in parent.data.tags
    children = _children(client, "executors")
    assert sorted(children) == sorted(EXECUTORS), sorted(children)
    for trial_id, executor in EXECUTORS.items():
        child = children[trial_id]
        assert child.data.tags["raysweep.executor"] == executor, (trial_id, child.data.tags)
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")]
        if trial_id in FAILED:
            assert child.info.status == "FAILED", (trial_id, child.info.status)
            assert child.data.tags["raysweep.status"] == "failed", child.data.tags
            continue
        assert child.info.status == "FINISHED", (trial_id, child.info.status)
        assert child.data.tags["raysweep.status"] == "finished", child.data.tags
        epochs = DDP_EPOCHS if trial_id == DDP else EPOCHS
        assert sorted(steps) == list(range(1, epochs + 1)), (trial_id, steps)
    # What ran each: only the TorchTrainer trials have a Ray Train run (`<experiment>-train/<id>`).
    trained = storage / f"{experiment.name}-train"
    assert sorted(p.name for p in trained.iterdir()) == ["t002", "t003", "t004"]
    ddp = children[DDP]
    assert ddp.data.params["train.batch_size"] == "64"  # the global batch, split over ranks
    _agrees_with_one_worker(spec, ddp.data.metrics)
    _model_loads(f"sqlite:///{tmp_path / 'mlflow.db'}", children["t003"].info.run_id)

    # `--study inline-retried`: that study's one trial, t000 as in the whole plan, one more
    # parent.
    proc = run_cli([*run, "--study", "inline-retried"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 trial, 1 worker x (1 CPU) each (inline)" in out, out
    (only,) = [p for p in _parents(client, "executors") if p.info.run_id != parent.info.run_id]
    assert only.info.status == "FINISHED"
    assert only.data.tags["raysweep.selected_studies"] == "inline-retried"
    assert only.data.params["trials"] == "1" and only.data.params["executor"] == "inline"
    (child,) = _children(client, "executors", only.info.run_id).values()
    assert child.data.tags["raysweep.trial_id"] == "t000"
    assert (
        child.data.tags["raysweep.fingerprint"]
        == children["t000"].data.tags["raysweep.fingerprint"]
    )
    assert child.info.status == "FINISHED" and child.data.tags["raysweep.executor"] == "inline"


def _model_loads(uri: str, run_id: str) -> None:
    """A worker-group trial's model, which the driver exports (raysweep.exported), loads and
    gives one row of class scores per image of its logged input's shape."""
    import mlflow
    import torch

    model_uri = f"runs:/{run_id}/model"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        shape = mlflow.models.get_model_info(model_uri).signature.inputs.to_dict()[0]
        model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    finally:
        mlflow.set_tracking_uri(before)
    image = [abs(n) for n in shape["tensor-spec"]["shape"][1:]]
    assert tuple(model(torch.zeros(2, *image)).shape) == (2, 10), shape


def _agrees_with_one_worker(spec: Path, two: dict[str, float]) -> None:
    """Two DDP workers train the ddp study's trial as well as one worker does. The one-worker
    reference is the same trial config through `train_trial` in this process (what a
    one-worker trial executes, with the same seed), which saves a Ray session."""
    import torch

    from raysweep.config import load_spec
    from raysweep.plan import expand
    from raysweep.train import WorkerEnv, train_trial

    sweep, _ = load_spec(spec, ())
    (trial,) = [t for t in expand(sweep, str(spec)) if t.trial_id == DDP]
    torch.set_num_threads(1)
    reports: list[dict] = []
    train_trial(trial.config, WorkerEnv(), lambda metrics, state: reports.append(metrics))
    one = reports[-1]
    assert two["best_test_acc"] >= 0.85
    assert abs(two["best_test_acc"] - one["best_test_acc"]) < 0.06
    assert two["images_per_s"] > 0
