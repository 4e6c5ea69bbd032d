"""A sweep read back from a real (SQLite) MLflow store, without Ray: the numbers the training
side now logs (num_params, best train values, train_time_s, the clean train pass, per-class
accuracy) where a run has them, nothing invented where an older run has not; and `raysweep
report --band-cut shortest` writing report.html and logging it on the sweep's parent run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep.cli import main
from raysweep.report.read import read_sweep
from raysweep.report.tables import summary_table

LR = "train.optimizer.lr"
EXPERIMENT = "read-test"
CLASSES = {"zero": 0.9, "one": 0.8, "two": float("nan")}


def _trial(client: Any, exp: str, pid: str, tid: str, lr: float, new: bool, root: Path) -> str:
    """One trial run: 3 epochs (2 for t001); `new` = with everything the training side logs
    now, else only what older raysweep versions logged."""
    from mlflow.entities import Metric, Param

    tags = {
        "mlflow.parentRunId": pid,
        "raysweep.trial_id": tid,
        "raysweep.status": "finished",
        "raysweep.studies": "lr,models" if tid == "t000" else "lr",
    }
    run = client.create_run(exp, run_name=f"lenet lr={lr:g}", tags=tags)
    rid = run.info.run_id
    params = [Param(LR, str(lr)), Param("model.name", "lenet")]
    if new:
        params.append(Param("num_params", "61706"))
    epochs = 3 if tid == "t000" else 2
    metrics = []
    for e in range(1, epochs + 1):
        values = {
            "test_acc": 0.5 + 0.1 * e + lr,
            "train_acc": 0.55 + 0.1 * e,
            "test_loss": 1.0 - 0.1 * e,
            "train_loss": 0.9 - 0.1 * e,
            "gap": 0.05,
        }
        if new:
            values |= {"epoch_time_s": 4.0, "train_eval_acc": 0.6 + 0.1 * e}
            values["train_eval_loss"] = 0.8 - 0.1 * e
        metrics += [Metric(k, v, 0, e) for k, v in values.items()]
    finals = {"best_test_acc": 0.5 + 0.1 * epochs + lr, "best_epoch": epochs}
    if new:
        finals |= {"train_time_s": 12.0, "best_train_acc": 0.85, "best_train_acc_epoch": 3}
        finals |= {"best_train_loss": 0.6, "best_train_loss_epoch": 3}
        finals |= {"best_test_loss": 0.7, "best_test_loss_epoch": 3}
    metrics += [Metric(k, v, 0, epochs) for k, v in finals.items()]
    client.log_batch(rid, metrics=metrics, params=params)
    steps = pa.table(
        {
            "step": list(range(1, 4 * epochs + 1)),
            "epoch": [1 + (s // 4) for s in range(4 * epochs)],
            "lr": [lr] * (4 * epochs),
            "loss": [1.0 / s for s in range(1, 4 * epochs + 1)],
        }
    )
    folder = root / tid
    folder.mkdir()
    pq.write_table(steps, folder / "steps.parquet")
    if new:
        (folder / "per_class_accuracy.json").write_text(json.dumps(CLASSES))
    client.log_artifacts(rid, str(folder))
    time.sleep(1.1)  # MLflow's run times are in ms; a run that lasts ~1 s has a wall time
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture
def store(tmp_path: Path) -> dict[str, Any]:
    """A sweep over two learning rates (a third planned, never started): t000 logged by the
    new training side, t001 by an older one."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, run_name="sweep", tags={"raysweep.role": "sweep"})
    pid = parent.info.run_id
    client.log_param(pid, "metric", "test_acc")
    plan = [
        {"trial_id": f"t00{i}", "name": f"lr={lr}", "studies": ["lr"], "overrides": {LR: lr}}
        for i, lr in enumerate((1e-3, 1e-2, 1e-1))
    ]
    client.log_text(pid, json.dumps(plan), "plan.json")
    client.log_text(pid, f"name: {EXPERIMENT}\n", "sweep.yaml")
    runs = {
        "t000": _trial(client, exp, pid, "t000", 1e-3, True, tmp_path),
        "t001": _trial(client, exp, pid, "t001", 1e-2, False, tmp_path),
    }
    return {"uri": uri, "pid": pid, "client": client, "runs": runs, "root": tmp_path}


def test_read_new_numbers_where_logged_and_none_where_not(store: dict[str, Any]) -> None:
    sweep = read_sweep(store["uri"], EXPERIMENT)
    table = summary_table(sweep).set_index("trial_id")
    new, old, never = table.loc["t000"], table.loc["t001"], table.loc["t002"]
    assert new["num_params"] == 61706 and new["duration_s"] == 12.0  # train_time_s
    assert new["best_train_acc"] == 0.85 and new["best_train_acc_epoch"] == 3
    assert new["best_test_loss"] == 0.7 and new["best_train_loss_epoch"] == 3
    # the clean train pass: gap = train_eval_acc - test_acc at the last epoch
    assert new["train_eval_acc"] == pytest.approx(0.9)
    assert new["gap"] == pytest.approx(0.9 - (0.8 + 1e-3))
    # an older run: no parameter count; no epoch times, so no duration (never the wall time)
    assert pd.isna(old["num_params"]) and pd.isna(old["duration_s"])
    assert old["best_train_acc"] == pytest.approx(0.75) and old["best_train_acc_epoch"] == 2
    assert old["gap"] == pytest.approx(0.05)  # as logged
    assert never["status"] == "not started" and never["studies"] == "lr"
    per_class = sweep.per_class
    assert list(per_class["trial_id"].unique()) == ["t000"]
    assert list(per_class["class"]) == ["zero", "one", "two"]
    assert per_class["accuracy"].iloc[0] == 0.9 and per_class["accuracy"].isna().iloc[2]
    assert set(sweep.trials["model_name"].dropna()) == {"lenet"}
    hist = sweep.history
    assert hist[hist["trial_id"] == "t000"]["train_eval_acc"].notna().all()


def test_report_command_writes_and_logs_the_page(
    store: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    args = ["report", EXPERIMENT, "--tracking-uri", store["uri"], "--out", str(out)]
    try:
        main([*args, "--band-cut", "shortest"])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr()
    text = capsys.readouterr().out
    assert "report.html" in text and f"open {out / 'report.html'}" in text
    assert "num_params" in text and "best_train_acc" in text
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') >= 6
    assert "cut to its shortest run" in page  # the band's title
    logged = {a.path for a in store["client"].list_artifacts(store["pid"])}
    assert {"report.html", "loss_landscape.png", "per_class__lr.png", "curves__lr.png"} <= logged
    assert {"accuracy_vs_cost.png", "per_class__models.png"} <= logged
    try:
        main([*args, "--band-cut", "longest"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "'longest' is not one of 'none', 'shortest'" in capsys.readouterr().err
