"""End to end: one sweep file whose two studies ask for different resources, one trained inline
(in its Tune trial's process) and one by a Ray Train TorchTrainer, run as one sweep (one parent
run); then `--study` runs only the inline study, under the trial id the whole plan gives it,
as a second parent run in the same store. Real Ray, MLflow and training on digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SWEEP = {
    "name": "e2e-studies",
    "dataset": {"name": "digits", "image_size": 16, "limit_train": 256},
    "model": {"name": "basic_cnn"},
    "train": {"epochs": 1, "batch_size": 64, "log_model": False},
    "sweep": {
        "studies": [
            {"name": "inline", "set": {"train.optimizer.lr": 3.0e-3}},
            {
                "name": "trainer",
                "set": {"train.optimizer.lr": 1.0e-3},
                "resources": {"executor": "torch_trainer"},
            },
        ]
    },
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
}


def _runs(client, name: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_two_executors_in_one_sweep_then_one_study(write_sweep, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_sweep(SWEEP)
    storage = tmp_path / "ray"
    proc = run_cli(["run", str(spec), "--storage", str(storage)], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert (
        "2 trials, resources per study (inline: 1 worker x (1 CPU) (inline); "
        "trainer: 1 worker x (1 CPU) (torch_trainer)), up to 2 at a time" in out
    ), out

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,), children = _runs(client, "e2e-studies")
    assert parent.info.status == "FINISHED", parent.info
    assert parent.data.params["executor"] == "inline: inline; trainer: torch_trainer"
    assert parent.data.params["resources"] == (
        "inline: 1 worker x (1 CPU); trainer: 1 worker x (1 CPU)"
    )
    assert "raysweep.selected_studies" not in parent.data.tags
    by_id = {r.data.tags["raysweep.trial_id"]: r for r in children}
    assert sorted(by_id) == ["t000", "t001"]
    for trial_id, study, executor in (
        ("t000", "inline", "inline"),
        ("t001", "trainer", "torch_trainer"),
    ):
        run = by_id[trial_id]
        assert run.info.status == "FINISHED", (trial_id, run.info.status)
        assert run.data.tags["raysweep.status"] == "finished", run.data.tags
        assert run.data.tags["raysweep.studies"] == study
        assert run.data.tags["raysweep.executor"] == executor
        assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1]
    # What ran it: only the TorchTrainer trial has a Ray Train run (`<experiment>-train/<id>`).
    experiment_dir = parent.data.tags["raysweep.experiment_dir"]
    trained = storage / f"{experiment_dir}-train"
    assert sorted(p.name for p in trained.iterdir()) == ["t001"], list(trained.iterdir())

    # `--study inline`: that study's one trial, t000 as in the whole plan, one more parent.
    proc = run_cli(["run", str(spec), "--storage", str(storage), "--study", "inline"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 trial, 1 worker x (1 CPU) each (inline)" in out, out
    parents, children = _runs(client, "e2e-studies")
    (only,) = [p for p in parents if p.info.run_id != parent.info.run_id]
    assert only.info.status == "FINISHED"
    assert only.data.tags["raysweep.selected_studies"] == "inline"
    assert only.data.params["trials"] == "1"
    assert only.data.params["executor"] == "inline"
    (child,) = [r for r in children if r.data.tags["mlflow.parentRunId"] == only.info.run_id]
    assert child.data.tags["raysweep.trial_id"] == "t000"
    assert (
        child.data.tags["raysweep.fingerprint"] == by_id["t000"].data.tags["raysweep.fingerprint"]
    )
    assert child.info.status == "FINISHED" and child.data.tags["raysweep.executor"] == "inline"
