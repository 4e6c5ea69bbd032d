"""The driver killed mid-sweep (SIGKILL of the whole process group), then `--resume`: finished
trials are not rerun, unfinished ones continue from their checkpoints, one MLflow run per trial."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RAYSWEEP

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _kill_when(proc: subprocess.Popen, log: Path, needle: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text()
        if needle in text:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            return text
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before '{needle}':\n{text}")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"'{needle}' never appeared:\n{log.read_text()}")


def test_killed_driver_resumes_without_duplicate_runs(write_sweep, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_sweep(
        {
            "name": "e2e-resume",
            "model": {"name": "basic_cnn"},
            "train": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1e-3}},
            "sweep": {"axes": {"train.seed": [0, 1]}},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent": 1},
        }
    )
    storage = tmp_path / "ray"
    log = tmp_path / "first.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(RAYSWEEP), "run", str(spec), "--storage", str(storage)],
            cwd=tmp_path,
            env=_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    first = _kill_when(proc, log, "t001 epoch 1/4", timeout=600)
    assert "t000 finished" in first

    resumed = subprocess.run(
        [str(RAYSWEEP), "run", str(spec), "--resume"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "t000 started" not in resumed.stdout  # finished: not rerun
    assert "t001 epoch 1/4" not in resumed.stdout  # continued from its epoch-1 checkpoint
    assert "t001 epoch 4/4" in resumed.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e2e-resume")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.data.tags["raysweep.trial_id"] for r in children) == ["t000", "t001"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")]
        assert sorted(steps) == [1, 2, 3, 4], steps
