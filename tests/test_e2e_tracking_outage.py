"""A sweep whose MLflow tracking server (a local `mlflow server` on loopback) goes away twice,
in one sweep of two trials, one after the other:

- It stops at t000's epoch 2 and starts again after its epoch 4: training goes on meanwhile,
  the driver says that MLflow is unreachable and that it is back, and t000 ends with exactly
  one FINISHED run, each epoch once and a loadable model.
- It stops again at t001's epoch 2 and never comes back: the sweep ends soon after its last
  trial (a short grace period) with one clear error; once the server is back, `--resume`
  records what was lost, as it says: every trial one FINISHED run under one FINISHED parent.

The sweep is held at fault points (raysweep/faults.py) while the server is stopped and started,
and the second stop waits for t000's record to be complete (read back from the server):
nothing here waits for a length of time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import start_cli
from tests.holds import WAIT_S, Holds, kill_session
from tests.test_tracking_outage import TrackingServer, free_port

pytestmark = pytest.mark.slow

EPOCHS = 4
NAME = "tracking-outage"


def _check_complete(uri: str, trials: list[str], parent: str = "FINISHED") -> None:
    """One parent (`parent`: its MLflow status); per trial of `trials` one FINISHED run,
    epochs 1..EPOCHS once, one model."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(NAME)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.status for r in parents] == [parent], [r.info for r in parents]
    if parent == "FINISHED":
        assert parents[0].data.tags["raysweep.status"] == "done"
    children = [r for r in children if r.data.tags["raysweep.trial_id"] in trials]
    assert sorted(r.data.tags["raysweep.trial_id"] for r in children) == trials
    mlflow.set_tracking_uri(uri)
    for child in children:
        trial_id, run_id = child.data.tags["raysweep.trial_id"], child.info.run_id
        assert child.info.status == "FINISHED", (trial_id, child.info.status)
        assert child.data.tags["raysweep.status"] == "finished", (trial_id, child.data.tags)
        for metric in ("test_acc", "train_loss", "lr"):
            steps = sorted(m.step for m in client.get_metric_history(run_id, metric))
            assert steps == list(range(1, EPOCHS + 1)), (trial_id, metric, steps)
        assert len(client.get_metric_history(run_id, "best_test_acc")) == 1, trial_id
        models = client.search_logged_models(
            [exp.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        assert [str(m.status) for m in models] == ["READY"], (trial_id, models)
        mlflow.pytorch.load_model(f"runs:/{run_id}/model")


def _spec(write_sweep) -> Path:
    return write_sweep(
        {
            "name": NAME,
            "model": {"name": "lenet"},
            "train": {"epochs": EPOCHS, "batch_size": 64, "optimizer": {"name": "adam"}},
            "sweep": {"axes": {"train.seed": [0, 1]}},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent": 1},
        }
    )


def _server(tmp_path: Path) -> TrackingServer:
    (tmp_path / "mlflow").mkdir()
    server = TrackingServer(tmp_path / "mlflow", free_port())
    server.start()
    return server


def _recorded(uri: str, trial_id: str, proc, log: Path) -> None:
    """Wait until the trial's MLflow run is ended (its status tag is written last but one)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    deadline = time.monotonic() + WAIT_S
    while True:
        exp = client.get_experiment_by_name(NAME)
        runs = client.search_runs([exp.experiment_id], f"tags.`raysweep.trial_id` = '{trial_id}'")
        if runs and runs[0].info.status == "FINISHED":
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{trial_id} was never recorded:\n{log.read_text()}")
        time.sleep(0.2)


def test_sweep_rides_out_an_outage_then_ends_soon_when_one_never_ends_and_resume_records_it(
    write_sweep, tmp_path: Path
) -> None:
    spec = _spec(write_sweep)
    server = _server(tmp_path)
    holds = Holds(tmp_path / "holds")
    down, back = "after_checkpoint:t000:2", "after_checkpoint:t000:4"
    down_for_good = "after_checkpoint:t001:2"
    log = tmp_path / "run.log"
    args = ["run", str(spec), "--storage", str(tmp_path / "ray"), "--tracking-uri", server.uri]
    env = {**holds.env(down, back, down_for_good), "RAYSWEEP_TRACKING_GRACE_S": "3"}
    proc = start_cli(args, tmp_path, log, env=env)
    procs = [proc]
    try:
        holds.wait(down, proc, log)
        server.stop()
        holds.release(down)
        holds.wait(back, proc, log)  # t000 trained epochs 3 and 4 while MLflow was down
        server.start()
        holds.release(back)
        holds.wait(down_for_good, proc, log)
        _recorded(server.uri, "t000", proc, log)
        server.stop()
        holds.release(down_for_good)
        released = time.monotonic()
        code = proc.wait(timeout=900)
        ended_in = time.monotonic() - released
        text = log.read_text()
        assert code == 0, text  # every trial finished; MLflow's trouble is a warning
        assert "Traceback" not in text, text
        # The driver prints the writer's notices (runner.py passes them to the console): each
        # outage said once, the first one's end said once.
        assert text.count("training goes on") == 2, text
        assert text.count("MLflow reachable again") == 1, text
        # Minutes at most after the last trial (which ends seconds after the release), not the
        # hours of MLflow's own retries: the grace period, then each later write tried once.
        assert ended_in < 180, (ended_in, text)
        lost = [line for line in text.splitlines() if "writes not recorded" in line]
        assert len(lost) == 1, text
        assert f"MLflow at {server.uri} unreachable since " in lost[0], lost
        assert "the checkpoints are kept: run `" in lost[0] and "--resume` once" in lost[0], lost
        assert "2/2 done" in text and "t001 finished" in text, text

        server.start()
        _check_complete(server.uri, ["t000"], parent="RUNNING")  # rode out the first outage
        again = tmp_path / "resume.log"
        resumed = start_cli([*args, "--resume"], tmp_path, again)
        procs.append(resumed)
        code = resumed.wait(timeout=900)
        assert code == 0, again.read_text()
        assert "Traceback" not in again.read_text(), again.read_text()
        _check_complete(server.uri, ["t000", "t001"])
    finally:
        for each in procs:
            if each.poll() is None:
                kill_session(each)
        server.stop()
