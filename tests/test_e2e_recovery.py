"""Recovery at every fault point (raysweep/faults.py), with real Ray, MLflow and training.

Each test holds the sweep at a named point, kills a process there (never after a wait for a
console line or a length of time), and then checks what DESIGN.md's reliability contract
promises: after `--resume` (or the trial's own retries) the sweep exits 0 with exactly one
MLflow run per trial, each FINISHED with its model and a gap-free, repeat-free epoch history,
one FINISHED parent, nothing RUNNING.

- The driver killed as it makes the parent run (before its params and files), then Ctrl-C
  once while a trial trains (parent KILLED and tagged interrupted, exit 130, the way back
  printed), then the driver killed (SIGKILL of its whole session, local Ray included) at each
  other driver-side and trial-side point in turn, `--resume` after each: one sweep goes
  through all of them (and once with Tune's saved state cut short, as a kill while Tune
  copies it into storage leaves it).
- Tune's saved state naming a checkpoint that is gone (its `num_to_keep` deleted it before it
  saved again), then `--resume`: the trial goes on from the newest checkpoint on disk.

A killed trial process (either executor) and a killed DDP trial's driver:
tests/test_e2e_executors.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import library_log, start_cli
from tests.holds import Holds, kill_session

pytestmark = pytest.mark.slow

EPOCHS = 3


def _spec(write_sweep, name: str, executor: str = "inline", **train) -> Path:
    return write_sweep(
        {
            "name": name,
            "model": {"name": "lenet"},
            "train": {
                "epochs": EPOCHS,
                "batch_size": 64,
                "optimizer": {"name": "adam", "lr": 3e-3},
                **train,
            },
            "sweep": {"axes": {"train.seed": [0, 1]}},
            "resources": {
                "workers_per_trial": 1,
                "cpus_per_worker": 1,
                "max_concurrent": 1,
                "executor": executor,
            },
        },
        name=f"{name}.yaml",
    )


def _run_until(holds: Holds, args: list[str], cwd: Path, log: Path, point: str) -> dict:
    """Run raysweep held at `point`; once it is there, SIGKILL the driver's whole session."""
    proc = start_cli(args, cwd, log, env=holds.env(point))
    held = holds.wait(point, proc, log)
    kill_session(proc)
    return held


def _finish(args: list[str], cwd: Path, log: Path, env: dict | None = None) -> str:
    proc = start_cli(args, cwd, log, env=env)
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


def test_driver_killed_at_every_point_then_resumed(write_sweep, tmp_path: Path) -> None:
    """One sweep (t000 then t001), stopped at each point in turn and resumed each time: first
    killed as its parent run is made, Ctrl-C while t000 trains, then SIGKILL of the driver's
    whole session at every other point."""
    from mlflow.tracking import MlflowClient

    spec = _spec(write_sweep, "kill-matrix")
    run = ["run", str(spec), "--storage", str(tmp_path / "ray")]
    holds = Holds(tmp_path / "holds")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    # Killed as the parent run is made, before its params and files: it can be resumed.
    held = _run_until(holds, run, tmp_path, tmp_path / "made.log", "run_created:sweep")
    assert held["point"] == "run_created", held
    # Ctrl-C once: every unfinished trial KILLED, the parent KILLED and tagged interrupted,
    # the way back printed, exit 130.
    log = tmp_path / "ctrl-c.log"
    point = "mid_epoch:t000:1"
    proc = start_cli([*run, "--resume"], tmp_path, log, env=holds.env(point))
    holds.wait(point, proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=600) == 130, log.read_text()
    assert f"raysweep run {spec} --resume" in log.read_text(), log.read_text()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("kill-matrix").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED", parent.info.status
    assert parent.data.tags["raysweep.status"] == "interrupted"
    assert [r.info.status for r in runs if r is not parent] == ["KILLED"]  # t000

    points = [
        "before_trials",  # parent run created, no trial started
        "mid_epoch:t000:2",  # t000 half-way through epoch 2 (epoch 1 checkpointed)
        "trial_ended:t000",  # t000's last result in, its MLflow run not closed
        "run_created:t001",  # t001's MLflow run made, its params not logged
        "after_checkpoint:t001:3",  # t001's last checkpoint handed to Ray, its end not marked
        "model_logging:t001",  # t001's files logged, its model next
        "report",  # the end-of-run report logged, the parent not ended
    ]
    for i, point in enumerate(points):
        held = _run_until(holds, [*run, "--resume"], tmp_path, tmp_path / f"{i}.log", point)
        assert held["point"] == point.split(":")[0], held
        if point.startswith("mid_epoch"):
            # As a kill while Tune copied its state into storage leaves it (not atomic):
            # Tune's newest experiment state cut to nothing.
            states = (tmp_path / "ray").glob("kill-matrix-*/experiment_state-*.json")
            max(states).write_bytes(b"")  # (one per run; Tune reads the newest name)
    last = _finish([*run, "--resume"], tmp_path, tmp_path / "last.log")
    assert "t000 epoch" not in last and "t001 epoch" not in last, last  # nothing trained again
    _check_complete(uri, "kill-matrix", ["t000", "t001"])
    # What the resumes said along the way: each trial went on from its checkpoint, never from
    # zero; t001 only to report its end again, and its record was finished from that
    # checkpoint (it reached model_logging).
    after_mid_epoch = (tmp_path / "2.log").read_text()
    assert "t000 resumed   from its epoch-1 checkpoint" in after_mid_epoch, after_mid_epoch
    cut = "raysweep: warning: Tune's saved state experiment_state-"
    assert cut in after_mid_epoch and "is cut short" in after_mid_epoch, after_mid_epoch
    after_checkpoint = (tmp_path / "5.log").read_text()
    assert "t001 resumed   from its epoch-3 checkpoint" in after_checkpoint, after_checkpoint
    assert "t001 epoch" not in after_checkpoint, after_checkpoint


def test_resumed_where_tunes_saved_state_names_a_checkpoint_that_is_gone(
    write_sweep, tmp_path: Path
) -> None:
    """Tune deletes the checkpoint that falls out of num_to_keep before it saves the state that
    stops naming it; a driver killed in between left a state naming a checkpoint gone, and
    `--resume` failed the trial (raysweep.restored_checkpoints). Here Tune saves its state at
    every step (TUNE_GLOBAL_CHECKPOINT_S=0), so killed mid-epoch 2 it names epoch 1's checkpoint,
    which the test then moves under a name Tune does not know."""
    spec = write_sweep(
        {
            "name": "stale-record",
            "model": {"name": "lenet"},
            "train": {"epochs": EPOCHS, "batch_size": 64, "optimizer": {"name": "adam"}},
            "sweep": {"axes": {}},
        }
    )
    run = ["run", str(spec), "--storage", str(tmp_path / "ray")]
    holds, point = Holds(tmp_path / "holds"), "mid_epoch:t000:2"
    log = tmp_path / "first.log"
    proc = start_cli(run, tmp_path, log, env={**holds.env(point), "TUNE_GLOBAL_CHECKPOINT_S": "0"})
    holds.wait(point, proc, log)
    kill_session(proc)
    (trial_dir,) = (tmp_path / "ray").glob("stale-record-*/t000")
    (checkpoint,) = trial_dir.glob("checkpoint_*")
    checkpoint.rename(trial_dir / "checkpoint_000090")

    text = _finish([*run, "--resume"], tmp_path, tmp_path / "resume.log")
    assert "t000 resumed   from its epoch-1 checkpoint" in text, text
    assert "t000: Tune's saved state names a checkpoint that is gone; it goes on from " in (
        library_log(text).read_text()
    )
    # Epochs 2 and 3 checkpointed after it: Tune deleted beyond num_to_keep, the gone one
    # no longer in its list (else: FileNotFoundError on the driver).
    assert not (trial_dir / "checkpoint_000090").exists()
    _check_complete(f"sqlite:///{tmp_path / 'mlflow.db'}", "stale-record", ["t000"])
