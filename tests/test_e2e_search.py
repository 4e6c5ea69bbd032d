"""A `mode: tpe` sweep under ASHA through `raysweep run`, killed mid-trial and resumed: real
Ray, MLflow and training. Each trial id once, each point once, every run ended, one parent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import start_cli
from tests.holds import Holds, kill_session

pytestmark = pytest.mark.slow

EPOCHS = 3
SAMPLES = 6
AXES = {
    "train.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]},
    "train.optimizer.name": {"choice": ["sgd", "adam"]},
}


def test_tpe_sweep_killed_and_resumed_repeats_no_point(write_sweep, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_sweep(
        {
            "name": "tpe-resume",
            "dataset": {"name": "digits", "image_size": 16, "limit_train": 256},
            "model": {"name": "basic_cnn"},
            "train": {"epochs": EPOCHS, "batch_size": 64, "seed": 0, "log_model": False},
            "sweep": {
                "mode": "tpe",
                "samples": SAMPLES,
                "axes": AXES,
                "scheduler": {"name": "asha", "grace_epochs": 1},
            },
            "resources": {"max_concurrent": 2},
        }
    )
    run = ["run", str(spec), "--storage", str(tmp_path / "ray")]
    holds = Holds(tmp_path / "holds")
    point = "mid_epoch:t002:2"  # t002 half-way through epoch 2; t000, t001 told to TPE or not
    proc = start_cli(run, tmp_path, tmp_path / "first.log", env=holds.env(point))
    holds.wait(point, proc, tmp_path / "first.log")
    kill_session(proc)

    log = tmp_path / "resume.log"
    proc = start_cli([*run, "--resume"], tmp_path, log)
    assert proc.wait(timeout=900) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "up to 6 trials chosen by tpe" in text, text

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tpe-resume")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED" and parent.data.tags["raysweep.status"] == "done"
    ids = sorted(r.data.tags["raysweep.trial_id"] for r in children)
    assert ids == [f"t{i:03d}" for i in range(SAMPLES)], ids
    points = {
        json.dumps(json.loads(r.data.tags["raysweep.overrides"]), sort_keys=True) for r in children
    }
    assert len(points) == SAMPLES, points  # no point repeated
    for child in children:
        trial_id = child.data.tags["raysweep.trial_id"]
        assert child.info.status == "FINISHED", (trial_id, child.info.status)
        assert child.data.tags["raysweep.status"] in ("finished", "stopped"), child.data.tags
        run_epochs = int(child.data.tags["raysweep.epochs_run"])
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")]
        assert sorted(steps) == list(range(1, run_epochs + 1)), (trial_id, steps)
        assert child.data.params["train.optimizer.lr"], child.data.params
    # t002 went on from its epoch-1 checkpoint, with the point it had (its one run, above).
    assert "t002 resumed   from its epoch-1 checkpoint" in text, text
