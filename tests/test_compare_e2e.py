"""End to end: compare the runs of the shared real sweep (`cli_sweep`, experiment `e2e-digits`)
from MLflow alone: report, best (+ registry), predict, export, and their user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from raysweep.cli import main
from tests.conftest import RAYSWEEP

pytestmark = pytest.mark.slow

EXPERIMENT = "e2e-digits"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("best_by_axis.png", "test_acc_curves.png", "gap.png", "loss_landscape.png")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`raysweep ARGS` in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _runs(uri: str) -> tuple[object, list[object]]:
    client = _client(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("raysweep.role") == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


@pytest.fixture(scope="module", autouse=True)
def _sweep_ran(cli_sweep: dict) -> None:
    """Every test here reads the shared sweep's store: stop with its output if it never ran."""
    proc = cli_sweep["proc"]
    if not (cli_sweep["work"] / "mlflow.db").is_file() or "e2e-digits" not in proc.stdout:
        pytest.fail(f"the shared sweep did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def report_dir(cli_sweep: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`raysweep report` once for the module (it also logs the report to the parent run)."""
    import subprocess

    out = tmp_path_factory.mktemp("report") / "out"
    proc = subprocess.run(
        [
            str(RAYSWEEP),
            "report",
            EXPERIMENT,
            "--tracking-uri",
            cli_sweep["uri"],
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cli_sweep["work"],
    )
    return {"proc": proc, "out": out}


def test_summary_rows_equal_the_mlflow_runs(cli_sweep: dict) -> None:
    from raysweep.report.read import read_sweep
    from raysweep.report.tables import summary_table

    sweep = read_sweep(cli_sweep["uri"], EXPERIMENT)
    table = summary_table(sweep)
    parent, children = _runs(cli_sweep["uri"])
    assert sweep.parent_run_id == parent.info.run_id
    assert len(table) == len(children) == 6
    by_run = {r.info.run_id: r for r in children}
    assert set(table["run_id"]) == set(by_run)
    assert "train.optimizer.lr" in sweep.axes
    for row in table.to_dict("records"):
        run = by_run[row["run_id"]]
        assert row["trial_id"] == run.data.tags["raysweep.trial_id"]
        assert row["status"] == run.data.tags["raysweep.status"]
        assert row["name"] == run.info.run_name
        if "best_test_acc" in run.data.metrics:
            assert row["best_test_acc"] == pytest.approx(run.data.metrics["best_test_acc"])
            assert row["test_acc"] == pytest.approx(run.data.metrics["test_acc"])
        if row["status"] == "failed":
            assert np.isnan(row["best_test_acc"])
    statuses = list(table["status"])
    assert statuses[0] == "finished" and statuses[-1] == "failed"  # best first, failed last
    # every history point of every trial is there, step = epoch
    history = sweep.history
    for run in children:
        tid = run.data.tags["raysweep.trial_id"]
        logged = _client(cli_sweep["uri"]).get_metric_history(run.info.run_id, "test_acc")
        assert len(history[history["trial_id"] == tid]) == len(logged)


def test_report_writes_every_plot_and_logs_them(cli_sweep: dict, report_dir: dict) -> None:
    proc, out = report_dir["proc"], report_dir["out"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trial_id" in proc.stdout and "best_test_acc" in proc.stdout
    assert "raysweep: best: " in proc.stdout
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000, name
    for name in ("summary.parquet", "summary.csv", "summary.md", "sweep.yaml", "plan.json"):
        assert (out / name).is_file(), name
    rows = pq.read_table(out / "summary.parquet").to_pylist()
    assert len(rows) == 6
    parent, _ = _runs(cli_sweep["uri"])
    logged = {a.path for a in _client(cli_sweep["uri"]).list_artifacts(parent.info.run_id)}
    assert logged >= {*PLOTS, "summary.parquet", "summary.csv", "summary.md"}
    # the parent's summary.parquet is now the report's
    local = _client(cli_sweep["uri"]).download_artifacts(
        parent.info.run_id, "summary.parquet", str(out.parent)
    )
    assert pq.read_table(local).to_pylist() == rows


def test_best_agrees_with_the_summary(
    cli_sweep: dict, report_dir: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        ["best", EXPERIMENT, "--tracking-uri", cli_sweep["uri"], "--json"], capsys
    )
    assert code == 0, err
    best = json.loads(out)
    top = pq.read_table(report_dir["out"] / "summary.parquet").to_pylist()[0]
    assert best["run_id"] == top["run_id"] and best["trial_id"] == top["trial_id"]
    assert best["value"] == pytest.approx(top["best_test_acc"])
    assert best["model_uri"] == f"runs:/{best['run_id']}/model"
    parent, _ = _runs(cli_sweep["uri"])
    assert best["run_id"] == parent.data.tags["raysweep.best_run_id"]
    assert best["params"]["train.optimizer.lr"] and "train.optimizer.lr" in best["swept"]
    code, text, _ = _cli(["best", EXPERIMENT, "--tracking-uri", cli_sweep["uri"]], capsys)
    assert code == 0 and best["run_id"] in text and "model:    runs:/" in text


def _digits_test_set(run) -> tuple[np.ndarray, np.ndarray]:
    """The trial's test split, rebuilt from its dataset params (uint8 N x 1 x 32 x 32)."""
    from raysweep.data import load_dataset
    from raysweep.report.store import parse_param
    from raysweep.sections import DatasetSpec

    fields = {
        k.removeprefix("dataset."): parse_param(v)
        for k, v in run.data.params.items()
        if k.startswith("dataset.")
    }
    data = load_dataset(DatasetSpec.model_validate(fields))
    return data.x_test.numpy(), data.y_test.numpy()


def test_logged_model_reproduces_its_accuracy_and_predict_agrees(
    cli_sweep: dict, tmp_path: Path
) -> None:
    import subprocess

    import torch
    from PIL import Image

    from raysweep.predict import load_model, normalize
    from raysweep.report.best import best_run

    best = best_run(cli_sweep["uri"], EXPERIMENT)
    model, spec = load_model(best.model_uri, cli_sweep["uri"])
    assert spec.in_channels == 1 and spec.image_size == 32 and len(spec.classes) == 10
    run = _client(cli_sweep["uri"]).get_run(best.run_id)
    x, y = _digits_test_set(run)
    with torch.inference_mode():
        logits = torch.cat(
            [
                model(normalize(torch.from_numpy(x[i : i + 128]), spec))
                for i in range(0, len(x), 128)
            ]
        )
    predicted = logits.argmax(1).numpy()
    accuracy = float((predicted == y).mean())
    assert abs(accuracy - run.data.metrics["test_acc"]) <= 1.0 / len(y) + 1e-9

    images = tmp_path / "digits"
    images.mkdir()
    for i in range(8):
        Image.fromarray(x[i, 0]).save(images / f"digit_{i}.png")
    proc = subprocess.run(
        [
            str(RAYSWEEP),
            "predict",
            best.model_uri,
            str(images),
            "--tracking-uri",
            cli_sweep["uri"],
            "--top",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answers = json.loads(proc.stdout)
    assert [Path(a["path"]).name for a in answers] == [f"digit_{i}.png" for i in range(8)]
    assert [a["class"] for a in answers] == [spec.classes[int(c)] for c in predicted[:8]]
    assert all(len(a["top"]) == 3 and 0.0 < a["probability"] <= 1.0 for a in answers)


def test_export_parquet_and_csv(
    cli_sweep: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, children = _runs(cli_sweep["uri"])
    for fmt in ("parquet", "csv"):
        target = tmp_path / f"trials.{fmt}"
        args = ["export", EXPERIMENT, "--format", fmt, "--out", str(target)]
        code, out, err = _cli([*args, "--tracking-uri", cli_sweep["uri"]], capsys)
        assert code == 0, err
        assert "6 trial runs" in out
        table = pq.read_table(target) if fmt == "parquet" else pacsv.read_csv(target)
        assert table.num_rows == 6
        assert set(table.column("run_id").to_pylist()) == {r.info.run_id for r in children}
        for column in ("train.optimizer.lr", "model.name", "test_acc", "best_test_acc", "status"):
            assert column in table.column_names
        lrs = table.column("train.optimizer.lr").to_pylist()
        assert all(isinstance(v, float) for v in lrs)


def test_register_creates_a_model_version(
    cli_sweep: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["best", EXPERIMENT, "--tracking-uri", cli_sweep["uri"], "--register", "e2e-digits-best"]
    code, out, err = _cli([*args, "--json"], capsys)
    assert code == 0, err
    best = json.loads(out)
    assert best["registered"]["name"] == "e2e-digits-best"
    versions = _client(cli_sweep["uri"]).search_model_versions("name='e2e-digits-best'")
    assert any(v.run_id == best["run_id"] for v in versions)


def test_user_errors(cli_sweep: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = ["--tracking-uri", cli_sweep["uri"]]
    code, _, err = _cli(["report", "no-such-experiment", *uri], capsys)
    assert code == 2 and "raysweep: error: no experiment 'no-such-experiment'" in err
    assert "e2e-digits" in err  # the experiments that are there
    missing = f"sqlite:///{tmp_path / 'x.db'}"
    code, _, err = _cli(["export", EXPERIMENT, "--tracking-uri", missing], capsys)
    assert code == 2 and "raysweep: error: no MLflow store at" in err
    assert not (tmp_path / "x.db").exists()
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code, _, err = _cli(["predict", "runs:/0123456789abcdef/model", str(bad), *uri], capsys)
    assert code == 2 and "raysweep: error: cannot load model" in err
    from raysweep.report.best import best_run

    model_uri = best_run(cli_sweep["uri"], EXPERIMENT).model_uri
    code, _, err = _cli(["predict", model_uri, str(bad), *uri], capsys)
    assert code == 2 and f"raysweep: error: {bad}: not a readable image" in err
    code, _, err = _cli(["predict", model_uri, str(tmp_path / "missing.png"), *uri], capsys)
    assert code == 2 and "no such file" in err
    assert "Traceback" not in err
