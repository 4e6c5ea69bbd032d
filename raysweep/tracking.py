"""MLflow, written by one process: the sweep driver.

Layout (DESIGN.md): experiment = sweep name; one parent run per sweep; one child run per trial
(tag `mlflow.parentRunId`) with the flattened resolved config as params, per-epoch metrics
(step = epoch), and at the end the model, the confusion matrix, per-class accuracy and the
per-step losses, all read from the trial's last Ray checkpoint. Every write goes through one
background thread (`MlflowWriter`), so Tune's event loop never waits on SQLite or artifact
uploads and there is exactly one writer however many trials run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from raysweep.config import METRICS as METRIC_KEYS

TAG_TRIAL = "raysweep.trial_id"
TAG_STATUS = "raysweep.status"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use; a relative sqlite path becomes absolute (printed to the user)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def ui_hint(uri: str, experiment_id: str | None = None) -> str:
    """How to look at the runs: the `mlflow ui` command and the link to the runs table."""
    link = "http://127.0.0.1:5000"
    if experiment_id is not None:
        link += f"/#/experiments/{experiment_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        return f"open {base}/#/experiments/{experiment_id}?workflowType=machine_learning"
    return f"mlflow ui --backend-store-uri {uri}   then open {link}"


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings -> dotted keys (lists stay values)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def pip_requirements() -> list[str]:
    """Pinned requirements for logged models (inferring them costs seconds per model)."""
    from importlib.metadata import version

    return [f"torch=={version('torch')}", f"numpy=={version('numpy')}"]


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial's resolved config as the flat MLflow params of its run (`train.optimizer.lr`)."""
    return {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in flatten(config)}


class MlflowWriter:
    """All MLflow writes of a sweep, in order, on one background thread."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(experiment)
        else:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            self.experiment_id = found.experiment_id
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._errors: list[str] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a write; failures are collected (tracking must not kill the sweep).

        Arguments that are Futures (of earlier writes) are replaced by their results."""

        def guarded() -> Any:
            try:
                # A run id may still be a Future of an earlier write (a child run being created):
                # writes run in order on this thread, so it is resolved by now.
                return fn(*(a.result() if isinstance(a, Future) else a for a in args))
            except Exception as exc:  # noqa: BLE001
                self._errors.append(f"{getattr(fn, '__name__', fn)}: {exc}")
                return None

        return self._pool.submit(guarded)

    def wait(self) -> None:
        """Block until every write queued so far is done (one thread: writes run in order)."""
        self._pool.submit(lambda: None).result()

    def flush(self) -> list[str]:
        """Wait for every queued write and stop the thread; returns the errors seen."""
        self._pool.shutdown(wait=True)
        return self._errors

    # ---- runs -----------------------------------------------------------------------------

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """Create the sweep's parent run now (synchronously: children need its id)."""
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        batch = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run.info.run_id, params=batch[i : i + 100])
        return run.info.run_id

    def find_child(self, parent_id: str, trial_id: str) -> str | None:
        """The existing child run of `trial_id` under `parent_id` (resume), if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' "
            f"and tags.`{TAG_TRIAL}` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def create_child(
        self, parent_id: str, name: str, tags: dict[str, str], config: dict[str, Any]
    ) -> str:
        """A nested run for one trial, with the flattened resolved config as params."""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": parent_id, **tags},
        )
        params = [Param(k, v) for k, v in trial_params(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[i : i + 100])
        return run.info.run_id

    def log_epoch(self, run_id: str, metrics: dict[str, Any]) -> None:
        """One epoch's metrics, step = epoch, in one batch."""
        from mlflow.entities import Metric

        step = int(metrics["epoch"])
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(metrics[k]), now, step)
            for k in METRIC_KEYS
            if isinstance(metrics.get(k), int | float)
        ]
        self.client.log_batch(run_id, metrics=batch)

    def log_final(self, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Per-trial results (best_test_acc, best_epoch, ...) and tags."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """A text artifact (sweep file, plan, error)."""
        self.client.log_text(run_id, text, artifact_file)

    def reopen(self, run_id: str, tags: dict[str, str]) -> None:
        """A resumed trial's run is RUNNING again."""
        self.client.update_run(run_id, status="RUNNING")
        self.log_final(run_id, {}, tags)

    def end(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status)

    def log_checkpoint(self, run_id: str, checkpoint_path: str, log_model: bool) -> None:
        """Model, confusion matrix, per-class accuracy and per-step losses from a checkpoint."""
        from raysweep.artifacts import load_state, trial_artifacts

        state = load_state(checkpoint_path)
        self._backfill_epochs(run_id, state["history"])
        with tempfile.TemporaryDirectory() as tmp:
            trial_artifacts(state, Path(tmp))
            self.client.log_artifacts(run_id, tmp)
        if log_model:
            self._log_model(run_id, state)

    def _backfill_epochs(self, run_id: str, history: list[dict[str, float]]) -> None:
        # A driver killed between a checkpoint and its MLflow write loses that epoch's metrics
        # in MLflow; the checkpoint has them all.
        logged = {m.step for m in self.client.get_metric_history(run_id, "test_acc")}
        for epoch, metrics in enumerate(history, start=1):
            if epoch not in logged:
                self.log_epoch(run_id, {**metrics, "epoch": epoch})

    def _log_model(self, run_id: str, state: dict[str, Any]) -> None:
        import mlflow
        import numpy as np

        from raysweep.artifacts import rebuild_model

        model = rebuild_model(state)
        meta = state["meta"]
        example = np.zeros(
            (2, meta["in_channels"], meta["image_size"], meta["image_size"]), dtype=np.float32
        )
        with mlflow.start_run(run_id=run_id):
            mlflow.pytorch.log_model(
                model,
                name="model",
                input_example=example,
                pip_requirements=pip_requirements(),
                metadata={"raysweep": meta},
            )


def experiment_id_for(tracking_uri: str, name: str) -> str | None:
    """The id of experiment `name`, or None."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri).get_experiment_by_name(name)
    return found.experiment_id if found else None
