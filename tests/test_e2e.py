"""End to end with everything real: the CLI starts a local Ray, Tune runs TorchTrainer trials
that train on scikit-learn's digits, and MLflow (SQLite in a tmp dir) records them.

`cli_sweep` (conftest) is one real sweep shared by the end-to-end modules: ASHA over several
learning rates, one trial that diverges and one that fails at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.records import EPOCH_METRICS as METRICS

pytestmark = pytest.mark.slow


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _children(client, name: str) -> tuple[object, dict[str, object]]:
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = {
        r.data.tags["raysweep.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    return parents[0], children


def _by_study(children: dict) -> dict[str, object]:
    return {r.data.tags["raysweep.studies"]: r for r in children.values()}


def test_cli_run_exit_code_and_summary(cli_sweep: dict) -> None:
    proc = cli_sweep["proc"]
    out = proc.stdout
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one trial failed on purpose
    assert "Traceback" not in out + proc.stderr
    assert "6 trials, 1 worker x (1 CPU) each (inline)" in out and "scheduler asha" in out
    assert "t000 started" in out and "epoch 3/3" in out
    assert "FAILED" in out and "no-such-activation" in out
    # A model that cannot be built fails at once: no retry can fix it (train.max_failures: 2).
    assert "t003 FAILED    the model cannot be built" in out, out
    assert "t003 started" not in out and "t003 retrying" not in out, out
    assert "diverged" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    assert "workflowType=machine_learning" in out
    summary = out[out.index("trial_id  ") :]
    first_row = summary.splitlines()[1].split()
    assert first_row[1] == "finished"  # best first
    assert "failed" in summary and "diverged" in summary
    assert "raysweep: trial t003" in out  # the failed trial is listed with its error


def test_mlflow_layout(cli_sweep: dict) -> None:
    client = _client(cli_sweep["uri"])
    parent, children = _children(client, "e2e-digits")
    assert len(children) == 6
    assert cli_sweep["parent_artifacts"] >= {
        "sweep.yaml",
        "plan.json",
        "summary.csv",
        "summary.parquet",
        "summary.md",
        "best_by_axis.png",
        "test_acc_curves.png",
        "gap.png",
        "loss_landscape.png",  # the sweep has an lr axis
    }
    assert parent.info.status == "FAILED"  # a trial failed
    assert parent.data.tags["raysweep.best_run_id"] in {r.info.run_id for r in children.values()}
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    study = _by_study(children)

    failed = study["broken"]
    assert failed.info.status == "FAILED" and failed.data.tags["raysweep.status"] == "failed"
    error = client.download_artifacts(failed.info.run_id, "error.txt")
    assert "no-such-activation" in Path(error).read_text()

    diverged = study["diverging"]
    assert diverged.info.status == "FINISHED"
    assert diverged.data.tags["raysweep.status"] == "diverged"
    assert diverged.data.metrics["diverged"] == 1

    finished = [r for r in children.values() if r.data.tags["raysweep.status"] == "finished"]
    assert len(finished) >= 1
    for child in finished:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        for tag in ("raysweep.trial_id", "raysweep.node_id", "raysweep.host", "raysweep.device"):
            assert tags.get(tag), tag
        assert tags["raysweep.device"] == "cpu"
        assert params["train.optimizer.name"] == "adam"
        assert params["dataset.name"] == "digits"
        for key in (*METRICS, "best_test_acc", "best_epoch"):
            assert key in metrics, key
        history = client.get_metric_history(child.info.run_id, "test_acc")
        assert sorted(m.step for m in history) == [1, 2, 3]
        assert 0.0 <= metrics["test_acc"] <= 1.0
        assert metrics["best_test_acc"] == max(m.value for m in history)
        gap = metrics["train_acc"] - metrics["test_acc"]
        assert metrics["gap"] == pytest.approx(gap, abs=1e-9)
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {
            "confusion_matrix.json",
            "confusion_matrix.png",
            "first_layer_kernels.png",
            "per_class_accuracy.json",
            "steps.parquet",
        } <= arts
    best = max(finished, key=lambda r: r.data.metrics["best_test_acc"])
    assert best.data.metrics["best_test_acc"] >= 0.85


def test_asha_stops_the_slow_learner(cli_sweep: dict) -> None:
    """lr 1e-6 reaches ASHA's first rung (epoch 1) far below the others and is stopped there;
    it is recorded as stopped (not failed) with the epoch it reached."""
    client = _client(cli_sweep["uri"])
    _, children = _children(client, "e2e-digits")
    slow = _by_study(children)["slow"]
    assert slow.info.status == "FINISHED"
    assert slow.data.tags["raysweep.status"] == "stopped"
    assert int(slow.data.tags["raysweep.epochs_run"]) < 3
    steps = [m.step for m in client.get_metric_history(slow.info.run_id, "test_acc")]
    assert max(steps) < 3


def test_tune_keeps_its_result_json_and_no_other_logs(cli_sweep: dict) -> None:
    """Tune's own record of each trial's results is its result.json (the multi-node tests read
    it), one line per epoch reported; its CSV and TensorBoard loggers are off."""
    storage = cli_sweep["work"] / "ray"
    results = sorted(storage.glob("*/t0*/result.json"))
    assert len(results) == 5, results  # every trial but t003, which never started
    for result in results:
        assert 1 <= len(result.read_text().splitlines()) <= 3, result
    assert not list(storage.rglob("progress.csv"))
    assert not list(storage.rglob("events.out.tfevents*"))


def test_logged_model_predicts_with_logged_accuracy(cli_sweep: dict) -> None:
    import mlflow
    import torch

    from raysweep.data import load_dataset
    from raysweep.sections import DatasetSpec

    client = _client(cli_sweep["uri"])
    exp = client.get_experiment_by_name("e2e-digits")
    run = client.search_runs(
        [exp.experiment_id], "tags.`raysweep.status` = 'finished'", max_results=1
    )[0]
    mlflow.set_tracking_uri(cli_sweep["uri"])
    model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    data = load_dataset(
        DatasetSpec(
            name="digits", image_size=32, cache_dir=str(Path(run.data.params["dataset.cache_dir"]))
        )
    )
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (data.x_test.float() / 255 - mean) / std
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 100]) for i in range(0, len(x), 100)]).argmax(1)
    acc = (pred == data.y_test).float().mean().item()
    assert acc == pytest.approx(run.data.metrics["test_acc"], abs=1e-6)
