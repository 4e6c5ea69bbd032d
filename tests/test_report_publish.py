"""Reading a sweep and writing its report are separate: building a report reads MLflow and
never writes it; its files reach a run only through `publish.log_report` (a plain client) or the
sweep driver's one writer (`MlflowWriter.log_dir`, queued), and only the report's own files."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from raysweep.report.build import write_report
from raysweep.report.publish import log_report, stage
from raysweep.write_queue import WriteQueue
from tests.test_analysis import make_sweep

REPORT_DIR = Path(__file__).resolve().parents[1] / "raysweep" / "report"
# MLflow client calls that change a store.
WRITES = {
    "create_experiment",
    "create_run",
    "delete_run",
    "delete_logged_model",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_image",
    "log_metric",
    "log_model",
    "log_param",
    "log_table",
    "log_text",
    "register_model",
    "set_tag",
    "set_terminated",
    "update_run",
}


class Recorder:
    """A `log_artifacts` target that records what the directory held while it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path, dict[str, bytes]]] = []

    def log_artifacts(self, run_id: str, local_dir: str) -> None:
        folder = Path(local_dir)
        self.calls.append((run_id, folder, {p.name: p.read_bytes() for p in folder.iterdir()}))


def test_only_publish_writes_to_mlflow() -> None:
    writers = {}
    for path in sorted(REPORT_DIR.glob("*.py")):
        calls = {
            node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        if calls & WRITES:
            writers[path.name] = sorted(calls & WRITES)
    assert writers == {"publish.py": ["log_artifacts"]}


def test_log_report_hands_over_exactly_the_report_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = write_report(make_sweep(seeds=(0, 1)), out)
    for extra in ("sweep.yaml", "plan.json", "notes.txt"):  # next to the report in --out
        (out / extra).write_text(extra)
    target = Recorder()
    log_report(target, "parent-run", report.files)
    [(run_id, folder, logged)] = target.calls
    assert run_id == "parent-run"
    assert sorted(logged) == sorted(p.name for p in report.files)
    assert all(logged[p.name] == p.read_bytes() for p in report.files)
    assert not folder.exists()  # the staging directory is gone once logged


def test_stage_wants_a_new_directory(tmp_path: Path) -> None:
    report = write_report(make_sweep(), tmp_path / "out")
    staged = stage(report.files, tmp_path / "logged")
    assert sorted(p.name for p in staged.iterdir()) == sorted(p.name for p in report.files)
    with pytest.raises(FileExistsError):
        stage(report.files, staged)


class QueueWriter(WriteQueue):
    """The driver's writer without MLflow: the same queue, `log_dir` recorded."""

    def __init__(self) -> None:
        super().__init__("fake://store")
        self.logged: list[tuple[str, dict[str, bytes]]] = []

    def log_dir(self, run_id: str, path: str) -> None:
        time.sleep(0.05)  # the write runs later, on the writer's thread
        self.logged.append((run_id, {p.name: p.read_bytes() for p in Path(path).iterdir()}))


def test_the_driver_logs_the_report_through_its_writer(tmp_path: Path) -> None:
    """The recipe `raysweep.report.publish` gives the sweep driver: stage, submit, wait."""
    report = write_report(make_sweep(), tmp_path / "report")
    writer = QueueWriter()
    files = stage(report.files, tmp_path / "logged")
    writer.submit(writer.log_dir, "parent-run", str(files))
    assert writer.wait()
    assert writer.flush() == []
    [(run_id, logged)] = writer.logged
    assert run_id == "parent-run" and sorted(logged) == sorted(p.name for p in report.files)


def test_mlflow_writer_log_dir_is_log_artifacts(tmp_path: Path) -> None:
    from raysweep.tracking import MlflowWriter

    (tmp_path / "summary.md").write_text("| trial |")
    writer = MlflowWriter.__new__(MlflowWriter)  # no store, no thread: the method alone
    writer.client = Recorder()
    writer.log_dir("run-1", str(tmp_path))
    [(run_id, folder, files)] = writer.client.calls
    assert run_id == "run-1" and folder == tmp_path and files == {"summary.md": b"| trial |"}


def _store(root: Path) -> tuple[str, str, Any]:
    """A small sweep in a fresh SQLite store: parent (plan, sweep file) and two trials."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("publish-test", artifact_location=(root / "art").as_uri())
    parent = client.create_run(exp, run_name="sweep", tags={"raysweep.role": "sweep"})
    pid = parent.info.run_id
    client.log_param(pid, "metric", "test_acc")
    plan = [
        {"trial_id": f"t00{i}", "name": f"lr={lr}", "overrides": {"train.optimizer.lr": lr}}
        for i, lr in enumerate((1e-3, 1e-2))
    ]
    client.log_text(pid, json.dumps(plan), "plan.json")
    client.log_text(pid, "name: publish-test\n", "sweep.yaml")
    for trial in plan:
        tags = {"mlflow.parentRunId": pid, "raysweep.trial_id": trial["trial_id"]}
        run = client.create_run(exp, run_name=trial["name"], tags=tags)
        lr = trial["overrides"]["train.optimizer.lr"]
        client.log_param(run.info.run_id, "train.optimizer.lr", str(lr))
        metrics = [
            Metric(key, value * epoch / 2, 0, epoch)
            for epoch in (1, 2)
            for key, value in (("test_acc", 0.5 + 10 * lr), ("train_acc", 0.6), ("gap", 0.01))
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id, "FINISHED")
    return uri, pid, client


def test_build_reads_and_only_log_report_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raysweep.report.build import build_report
    from raysweep.report.publish import tracking_client

    monkeypatch.chdir(tmp_path)
    uri, pid, client = _store(tmp_path)

    def artifacts() -> set[str]:
        return {a.path for a in client.list_artifacts(pid)}

    sweep, report, out = build_report(uri, "publish-test", tmp_path / "out")
    assert sweep.parent_run_id == pid and list(report.table["trial_id"]) == ["t001", "t000"]
    assert {"sweep.yaml", "plan.json"} <= {p.name for p in out.iterdir()}
    assert artifacts() == {"plan.json", "sweep.yaml"}  # building wrote nothing to MLflow
    log_report(tracking_client(uri), pid, report.files)
    assert artifacts() == {"plan.json", "sweep.yaml", *(p.name for p in report.files)}
    local = client.download_artifacts(pid, "summary.parquet", str(tmp_path))
    assert pq.read_table(local).to_pylist() == pq.read_table(out / "summary.parquet").to_pylist()
