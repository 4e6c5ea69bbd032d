"""Recovery at every fault point (raysweep/faults.py), with real Ray, MLflow and training.

Each test holds the sweep at a named point, kills a process there (never after a wait for a
console line or a length of time), and then checks what DESIGN.md's reliability contract
promises: after `--resume` (or the trial's own retries) the sweep exits 0 with exactly one
MLflow run per trial, each FINISHED with its model and a gap-free, repeat-free epoch history,
one FINISHED parent, nothing RUNNING.

One sweep goes through all of it, `--resume` after each stop:
- the driver killed as it makes the parent run (before its params and files), then Ctrl-C
  once while a trial trains (parent KILLED and tagged interrupted, exit 130, the way back
  printed), then the driver killed (SIGKILL of its whole session, local Ray included) at each
  other driver-side and trial-side point in turn;
- once with Tune's saved state cut short, as a kill while Tune copies it into storage leaves
  it;
- once with Tune's saved state naming a checkpoint that is gone (its `num_to_keep` deleted it
  before it saved again): the trial goes on from the newest checkpoint on disk.

Its model and data are the user's own (a model file next to the sweep file, a dataset
factory), and it is run from another directory: user code through every resume, and its
logged model loads in a fresh process where the user's file cannot be imported. (One sweep
shows all of this: each sweep of its own would cost a driver, a local Ray and trial processes.)

A killed trial process (either executor) and a killed DDP trial's driver:
tests/test_e2e_executors.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import library_log, start_cli
from tests.holds import WAIT_S, Holds, kill_session

pytestmark = pytest.mark.slow

EPOCHS = 3
NAME = "kill-matrix"

NETS = '''
"""The user's model."""
from torch import nn


class TinyNet(nn.Module):
    """A small CNN from the user's own file."""

    def __init__(self, in_channels, num_classes, image_size, width=16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(width * (image_size // 2) ** 2, num_classes),
        )

    def forward(self, x):
        return self.body(x)
'''

DATA = '''
"""The user's data: scikit-learn's digits as floats in [0, 1], N x H x W."""
import numpy as np


def load_digits_float(limit=600):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:limit]
    y = bunch.target[:limit]
    cut = len(x) * 4 // 5
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:],
            "classes": [str(i) for i in range(10)]}
'''


def _user_sweep(tmp_path: Path) -> Path:
    """The sweep file in `code/`, beside the user's model file and dataset factory: two
    trials (t000 width 4, t001 width 8), one at a time, inline."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "nets.py").write_text(NETS)
    (code / "data.py").write_text(DATA)
    sweep = {
        "name": NAME,
        "dataset": {
            "name": "data.py:load_digits_float",
            "image_size": 16,
            "limit": 600,
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"name": "nets.py:TinyNet", "width": 8},
        "train": {
            "epochs": EPOCHS,
            "batch_size": 64,
            "optimizer": {"name": "adam", "lr": 3e-3},
            "bf16": False,
            "channels_last": False,
        },
        "sweep": {"axes": {"model.width": [4, 8]}},
        "resources": {
            "workers_per_trial": 1,
            "cpus_per_worker": 1,
            "max_concurrent": 1,
            "executor": "inline",
        },
    }
    spec = code / "sweep.yaml"
    spec.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return spec


def _finish(args: list[str], cwd: Path, log: Path) -> str:
    proc = start_cli(args, cwd, log)
    code = proc.wait(timeout=900)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    return text


def _check_complete(uri: str, name: str, trials: list[str]) -> dict:
    """The contract after a sweep exited 0: one FINISHED run per trial with a model and each
    epoch once; one FINISHED parent; nothing RUNNING. Returns the child runs by trial id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    assert parents[0].info.status == "FINISHED", parents[0].data.tags
    assert parents[0].data.tags["raysweep.status"] == "done"
    assert sorted(r.data.tags["raysweep.trial_id"] for r in children) == trials
    by_trial = {r.data.tags["raysweep.trial_id"]: r for r in children}
    assert parents[0].data.params["trials"] == str(len(trials)), parents[0].data.params
    files = {f.path for f in client.list_artifacts(parents[0].info.run_id)}
    assert {"sweep.yaml", "plan.json"} <= files, files
    mlflow.set_tracking_uri(uri)
    for trial_id, child in by_trial.items():
        assert child.info.status == "FINISHED", (trial_id, child.info.status)
        assert child.data.tags["raysweep.status"] == "finished", (trial_id, child.data.tags)
        # Its resolved config and its model's size, though a kill may have come in between.
        params = child.data.params
        assert float(params["train.optimizer.lr"]) > 0 and int(params["num_params"]) > 0, params
        assert child.data.tags["raysweep.host"], child.data.tags
        for metric in ("test_acc", "train_loss"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, metric)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (trial_id, metric, steps)
        # Closed twice (the kill at model_logging): its results are still logged once.
        best = client.get_metric_history(child.info.run_id, "best_test_acc")
        assert len(best) == 1, (trial_id, best)
        models = [
            m
            for m in client.search_logged_models([exp.experiment_id])
            if m.source_run_id == child.info.run_id
        ]
        assert len(models) == 1, (trial_id, models)
        mlflow.pytorch.load_model(f"runs:/{child.info.run_id}/model")
    return by_trial


def _kill(proc: subprocess.Popen, log: Path, storage: Path) -> None:
    """SIGKILL the driver's whole session (its local Ray and trials included)."""
    kill_session(proc)


def _kill_and_cut_tunes_state(proc: subprocess.Popen, log: Path, storage: Path) -> None:
    """As a kill while Tune copied its state into storage leaves it (not atomic): the kill,
    then Tune's newest experiment state cut to nothing (one per run; Tune reads the newest
    name)."""
    kill_session(proc)
    max(storage.glob(f"{NAME}-*/experiment_state-*.json")).write_bytes(b"")


def _names(state: Path, needle: bytes) -> bool:
    """Whether Tune's saved experiment state names `needle` (its trials' state is cloudpickled,
    written as hex inside the JSON)."""
    try:
        text = state.read_text()
    except OSError:
        return False
    return any(needle in bytes.fromhex(h) for h in re.findall(r"(?:[0-9a-f]{2}){100,}", text))


def _kill_and_lose_tunes_checkpoint(proc: subprocess.Popen, log: Path, storage: Path) -> None:
    """As a kill between Tune deleting the checkpoint that fell out of `num_to_keep` and
    saving the state that stops naming it leaves it: once Tune's saved state names t001's
    epoch-1 checkpoint (Tune saves its state every ~10 s, its automatic period; a resumed Tune
    keeps the period its first run saved, so TUNE_GLOBAL_CHECKPOINT_S cannot shorten it here;
    the driver is not held, only t001's process), the driver is killed and that checkpoint
    moved under a name Tune does not know."""
    (trial_dir,) = storage.glob(f"{NAME}-*/t001")
    needle = f"t001/{next(trial_dir.glob('checkpoint_*')).name}".encode()
    deadline = time.monotonic() + WAIT_S
    while not _names(max(storage.glob(f"{NAME}-*/experiment_state-*.json")), needle):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    kill_session(proc)
    (checkpoint,) = trial_dir.glob("checkpoint_*")
    checkpoint.rename(trial_dir / "checkpoint_000090")


def test_driver_killed_at_every_point_then_resumed(tmp_path: Path) -> None:
    """One sweep (t000 then t001), stopped at each point in turn and resumed each time: first
    killed as its parent run is made, Ctrl-C while t000 trains, then SIGKILL of the driver's
    whole session at every other point."""
    from mlflow.tracking import MlflowClient

    spec = _user_sweep(tmp_path)
    storage = tmp_path / "ray"
    run = ["run", str(spec), "--storage", str(storage)]
    holds = Holds(tmp_path / "holds")
    work = tmp_path / "work"  # run from elsewhere: the refs resolve against the sweep file
    work.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    uri = f"sqlite:///{work / 'mlflow.db'}"

    # Killed as the parent run is made, before its params and files: it can be resumed.
    log = logs / "made.log"
    proc = start_cli(run, work, log, env=holds.env("run_created:sweep"))
    held = holds.wait("run_created:sweep", proc, log)
    kill_session(proc)
    assert held["point"] == "run_created", held
    # Ctrl-C once: every unfinished trial KILLED, the parent KILLED and tagged interrupted,
    # the way back printed, exit 130.
    log = logs / "ctrl-c.log"
    point = "mid_epoch:t000:1"
    proc = start_cli([*run, "--resume"], work, log, env=holds.env(point))
    holds.wait(point, proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=600) == 130, log.read_text()
    assert f"raysweep run {spec} --resume" in log.read_text(), log.read_text()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED", parent.info.status
    assert parent.data.tags["raysweep.status"] == "interrupted"
    assert [r.info.status for r in runs if r is not parent] == ["KILLED"]  # t000

    # Each point; other points held with it, so that the kill finds the sweep exactly there
    # (a hold of the driver's MLflow writer does not stop Tune, which goes on to start t001);
    # what is done once the sweep is held there (the kill, and what it leaves behind).
    before_t001_checkpoints = ("mid_epoch:t001:1",)
    steps = [
        ("before_trials", (), _kill),  # parent run created, no trial started
        ("mid_epoch:t000:2", (), _kill_and_cut_tunes_state),  # t000 mid-epoch 2
        # t000's last result in, its MLflow run not closed
        ("trial_ended:t000", before_t001_checkpoints, _kill),
        # t001's MLflow run made, its params not logged
        ("run_created:t001", before_t001_checkpoints, _kill),
        # t001 half-way through epoch 2
        ("mid_epoch:t001:2", (), _kill_and_lose_tunes_checkpoint),
        ("after_checkpoint:t001:3", (), _kill),  # t001's last checkpoint handed to Ray
        ("model_logging:t001", (), _kill),  # t001's files logged, its model next
        ("report", (), _kill),  # the end-of-run report logged, the parent not ended
    ]
    for i, (point, also, then) in enumerate(steps):
        step = Holds(tmp_path / f"holds-{i}")  # a point holds once per directory
        log = logs / f"{i}.log"
        proc = start_cli([*run, "--resume"], work, log, env=step.env(point, *also))
        held = step.wait(point, proc, log)
        assert held["point"] == point.split(":")[0], held
        then(proc, log, storage)
    last = _finish([*run, "--resume"], work, logs / "last.log")
    assert "t000 epoch" not in last and "t001 epoch" not in last, last  # nothing trained again
    children = _check_complete(uri, NAME, ["t000", "t001"])
    # What the resumes said along the way: each trial went on from its checkpoint, never from
    # zero; t001 only to report its end again, and its record was finished from that
    # checkpoint (it reached model_logging).
    after_cut = (logs / "2.log").read_text()
    assert "t000 resumed   from its epoch-1 checkpoint" in after_cut, after_cut
    cut = "raysweep: warning: Tune's saved state experiment_state-"
    assert cut in after_cut and "is cut short" in after_cut, after_cut
    after_lost = (logs / "5.log").read_text()
    assert "t001 resumed   from its epoch-1 checkpoint" in after_lost, after_lost
    assert "t001: Tune's saved state names a checkpoint that is gone; it goes on from " in (
        library_log(after_lost).read_text()
    )
    # Epochs 2 and 3 checkpointed after it: Tune deleted beyond num_to_keep, the gone one
    # no longer in its list (else: FileNotFoundError on the driver).
    assert not list(storage.glob(f"{NAME}-*/t001/checkpoint_000090"))
    after_checkpoint = (logs / "6.log").read_text()
    assert "t001 resumed   from its epoch-3 checkpoint" in after_checkpoint, after_checkpoint
    assert "t001 epoch" not in after_checkpoint, after_checkpoint
    _check_user_code(spec, uri, children["t001"].info.run_id, tmp_path)


def _check_user_code(spec: Path, uri: str, run_id: str, tmp_path: Path) -> None:
    """The runs name the user's model by its file; the logged model loads in a fresh process,
    elsewhere, with the user's file gone, and imports none of the user's code."""
    from mlflow.tracking import MlflowClient

    nets = spec.parent / "nets.py"
    params = MlflowClient(uri).get_run(run_id).data.params
    assert params["model.name"] == f"{nets}:TinyNet", params
    nets.rename(tmp_path / "moved-nets.py")
    load = textwrap.dedent(f"""
        import sys, mlflow, torch
        mlflow.set_tracking_uri({uri!r})
        model = mlflow.pytorch.load_model("runs:/{run_id}/model", map_location="cpu")
        out = model(torch.zeros(2, 1, 16, 16))
        assert tuple(out.shape) == (2, 10), out.shape
        assert not any(m.startswith(("nets", "raysweep_user")) for m in sys.modules), "user code"
        print("loaded")
    """)
    result = subprocess.run(
        [sys.executable, "-c", load], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-3000:]
