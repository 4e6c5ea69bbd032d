"""MLflow, written by one process: the sweep driver.

Layout (DESIGN.md): experiment = sweep name; one parent run per sweep; one child run per trial
(tag `mlflow.parentRunId`) with the flattened resolved config as params, per-epoch metrics
(step = epoch), and at the end the model, the confusion matrix, per-class accuracy and the
per-step losses, all read from the trial's last Ray checkpoint. Every write goes through one
background thread (`MlflowWriter`), so Tune's event loop never waits on SQLite or artifact
uploads and there is exactly one writer however many trials run.

A tracking server that cannot be reached does not stop the sweep: its writes wait in the
writer's queue (`raysweep.write_queue`) and are retried in order until it is back; each write
here is written so that a retry of a request that reached the server before its reply was lost
does not record anything twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from raysweep import faults
from raysweep.errors import UserError
from raysweep.records import LOGGED_PER_EPOCH, TAG_TRIAL
from raysweep.write_queue import WriteQueue, outage_reason

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow's own HTTP retries default to 7 with exponential backoff and a 120 s timeout: minutes
# per request while a server is down, during which the writer could neither report the outage
# nor keep its exit deadline. None (for this process, unless the user set them) leaves the
# waiting to the writer, which retries every write itself (and urllib3 logs no line per retry).
# Ending a run on a server also prints its link and fetches the run again for it: raysweep
# prints the experiment's link itself, and one request less per write is one failure less.
MLFLOW_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


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
        if experiment_id is None:
            return f"open {base}"
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


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite store, in `<store>-artifacts/`.

    MLflow's default is `./mlruns/<experiment id>` of whatever directory the command ran in, so
    two stores' experiment 1 would share a folder and a store moved elsewhere loses its models.
    A tracking server (http://) keeps its own artifact root: None leaves it to the server."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    store = Path(tracking_uri[len(prefix) :])
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return (store.parent / f"{store.stem}-artifacts" / slug).resolve().as_uri()


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial's resolved config as the flat MLflow params of its run (`train.optimizer.lr`)."""
    return {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in flatten(config)}


def _param_values(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v)[:6000] for k, v in params.items()}


def set_mlflow_http_defaults() -> None:
    """`MLFLOW_HTTP_ENV` for this process, each unless the user set it."""
    for key, value in MLFLOW_HTTP_ENV.items():
        os.environ.setdefault(key, value)


class MlflowWriter(WriteQueue):
    """All MLflow writes of a sweep, in order, on one background thread (`WriteQueue`).

    Writes that fail because the server cannot be reached are retried until they succeed, or
    until the grace period of `wait`/`flush` is over; other failures are recorded once (`flush`
    returns them) and the sweep goes on. Every write is safe to retry (see `retrying`).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        on_outage: Callable[[str], None] | None = None,
        on_recovered: Callable[[str], None] | None = None,
        **queue: Any,
    ) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        from raysweep import sqlite_store

        set_mlflow_http_defaults()
        sqlite_store.seed(tracking_uri)  # a new SQLite store without MLflow's migrations
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        try:
            self.experiment_id = self._open_experiment(experiment, tracking_uri)
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is None:
                raise
            raise UserError(f"MLflow at {tracking_uri} cannot be reached ({reason})") from exc
        super().__init__(tracking_uri, on_outage, on_recovered, **queue)

    def _open_experiment(self, name: str, tracking_uri: str) -> str:
        """The id of experiment `name`, created (or restored from deleted) if need be."""
        found = self.client.get_experiment_by_name(name)
        if found is None:
            return self.client.create_experiment(
                name, artifact_location=artifact_location(tracking_uri, name)
            )
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    # ---- runs -----------------------------------------------------------------------------

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """Create the sweep's parent run now (the caller waits: children need its id).

        Retried like any write while the server is unreachable, for at most the grace
        period; then (or on any other failure) a UserError: nothing has started yet."""
        since_ms = int(time.time() * 1000)
        args = (run_name, tags, params, since_ms)
        try:
            return self.submit_until(self._create_parent, args, self._grace_s)
        except UserError as exc:
            raise UserError(f"could not create the sweep's MLflow run: {exc}") from None

    def _create_parent(
        self, run_name: str, tags: dict[str, str], params: dict[str, Any], since_ms: int
    ) -> str:
        run_id = self._find_run(run_name, tags, since_ms) if self.retrying() else None
        if run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
            run_id = run.info.run_id
            faults.hold("run_created", "sweep")
        self._log_params(run_id, _param_values(params))
        return run_id

    def _find_run(self, run_name: str, tags: dict[str, str], since_ms: int) -> str | None:
        """A run named `run_name` with `tags`, started since `since_ms` (an earlier try's)."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"attributes.start_time >= {since_ms}"
        )
        for run in runs:
            if run.info.run_name == run_name and all(
                run.data.tags.get(k) == str(v) for k, v in tags.items()
            ):
                return run.info.run_id
        return None

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Params on a run (logging the same value again is a no-op in MLflow)."""
        self._log_params(run_id, params)

    def log_missing_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Those of `params` the run does not have yet (a crash between creating a run and
        logging its params left it without them). One it has keeps its value: MLflow params
        cannot change, and a resumed sweep may see other values (another cluster's resources)."""
        have = self.client.get_run(run_id).data.params
        self._log_params(run_id, {k: v for k, v in _param_values(params).items() if k not in have})

    def log_missing_texts(self, run_id: str, texts: dict[str, str]) -> None:
        """Those of `texts` (file name: content) not yet among the run's top-level files."""
        have = {Path(f.path).name for f in self.client.list_artifacts(run_id)}
        for name, text in texts.items():
            if name not in have:
                self.log_text(run_id, text, name)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Params in batches of 100 (logging the same value again is a no-op in MLflow)."""
        from mlflow.entities import Param

        batch = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i : i + 100])

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
        """A nested run for one trial, with the flattened resolved config as params.

        A retry first looks for the child its failed try may have created (same parent,
        same trial id), so a lost reply does not make two runs for one trial."""
        run_id = None
        if self.retrying() and TAG_TRIAL in tags:
            run_id = self.find_child(parent_id, tags[TAG_TRIAL])
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=name,
                tags={"mlflow.parentRunId": parent_id, **tags},
            )
            run_id = run.info.run_id
            faults.hold("run_created", tags.get(TAG_TRIAL, ""))
        self._log_params(run_id, trial_params(config))
        return run_id

    def log_epoch(self, run_id: str, metrics: dict[str, Any]) -> None:
        """One epoch's metrics, step = epoch, in one batch (a retry skips what landed)."""
        from mlflow.entities import Metric

        step = int(metrics["epoch"])
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(metrics[k]), now, step)
            for k in LOGGED_PER_EPOCH
            if isinstance(metrics.get(k), int | float)
        ]
        if self.retrying():
            batch = [m for m in batch if not self._has_step(run_id, m.key, step)]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def _has_step(self, run_id: str, key: str, step: int) -> bool:
        return any(m.step == step for m in self.client.get_metric_history(run_id, key))

    def log_final(self, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Per-trial results (best_test_acc, best_epoch, ...) and tags.

        Safe to repeat: tags are set idempotently, and a metric that already has this value is
        not logged again (a retried request that had landed, or a trial whose record a crash
        cut short, closed again by `--resume`)."""
        from mlflow.entities import Metric, RunTag

        if metrics:
            logged = self.client.get_run(run_id).data.metrics
            metrics = {k: v for k, v in metrics.items() if logged.get(k) != float(v)}
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """A text artifact (sweep file, plan, error)."""
        self.client.log_text(run_id, text, artifact_file)

    def log_dir(self, run_id: str, path: str) -> None:
        """Every file of a local directory as artifacts at the root of the run (the sweep's
        report); same-named artifacts are replaced, so a retry records nothing twice."""
        self.client.log_artifacts(run_id, str(path))

    def reopen(self, run_id: str, tags: dict[str, str], params: dict[str, Any]) -> None:
        """A resumed run (a trial's or the sweep's) is RUNNING again, with the `params` it
        was created for where a crash came before they were logged."""
        self.client.update_run(run_id, status="RUNNING")
        self.log_missing_params(run_id, params)
        self.log_final(run_id, {}, tags)

    def end(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status)

    def log_checkpoint(
        self, run_id: str, checkpoint_path: str, log_model: bool, trial_id: str = ""
    ) -> None:
        """Model, confusion matrix, per-class accuracy and per-step losses from a checkpoint.

        Safe to repeat (a retry, or `--resume` after a crash in here): files are overwritten
        and the model is logged only if the run has no usable one yet."""
        from raysweep.artifacts import load_state, trial_artifacts

        state = load_state(checkpoint_path)
        self._backfill_epochs(run_id, state["history"])
        with tempfile.TemporaryDirectory() as tmp:
            trial_artifacts(state, Path(tmp))
            self.client.log_artifacts(run_id, tmp)
        faults.hold("model_logging", trial_id)
        if log_model:
            self._log_model(run_id, state, checkpoint_path)

    def _backfill_epochs(self, run_id: str, history: list[dict[str, float]]) -> None:
        # A driver killed between a checkpoint and its MLflow write loses that epoch's metrics
        # in MLflow; the checkpoint has them all.
        logged = {m.step for m in self.client.get_metric_history(run_id, "test_acc")}
        for epoch, metrics in enumerate(history, start=1):
            if epoch not in logged:
                self.log_epoch(run_id, {**metrics, "epoch": epoch})

    def _model_ready(self, run_id: str) -> bool:
        """Whether the run has a READY model `model`; deletes unfinished ones (PENDING,
        FAILED: a killed or failed earlier try), since `runs:/<id>/model` loads the first
        LoggedModel of that name and run, whatever its state."""
        from mlflow.entities import LoggedModelStatus

        models = self.client.search_logged_models(
            [self.experiment_id],
            filter_string=f"name = 'model' AND source_run_id = '{run_id}'",
        )
        ready = False
        for model in models:
            if model.status == LoggedModelStatus.READY:
                ready = True
            else:
                self.client.delete_logged_model(model.model_id)
        return ready

    def _log_model(self, run_id: str, state: dict[str, Any], checkpoint_path: str = "") -> None:
        """The trained model as MLflow's `model` of the run (pt2 format); the program the
        trial exported beside its checkpoint where there is one (`raysweep.exported`)."""
        import mlflow

        from raysweep.artifacts import EXPORT_LOCK, rebuild_model
        from raysweep.exported import example_input, fetch_program, premade_program

        if self._model_ready(run_id):
            return
        model = rebuild_model(state)
        meta = state["meta"]
        example = example_input(meta)
        with tempfile.TemporaryDirectory() as tmp:
            program = fetch_program(checkpoint_path, Path(tmp)) if checkpoint_path else None
            with (
                EXPORT_LOCK,
                premade_program(program, example.shape) if program else nullcontext(),
                _active(run_id),
            ):
                mlflow.pytorch.log_model(
                    model,
                    name="model",
                    input_example=example,
                    pip_requirements=pip_requirements(),
                    metadata={"raysweep": meta},
                    # MLflow would load the model it just saved and run the example through
                    # it: a second torch.export round trip per trial. `raysweep predict`
                    # loads it.
                    validate_serving_input=False,
                )


@contextmanager
def _active(run_id: str) -> Iterator[None]:
    """The trial's run as MLflow's active run (what `log_model` links its model to), left
    RUNNING: `mlflow.start_run`'s own context would end it FINISHED on the way out, before the
    recorder's status tag and end, so a server gone in between left a FINISHED run whose tag
    still said running (and the run looked complete before it was)."""
    import mlflow

    mlflow.start_run(run_id=run_id)
    try:
        yield
    finally:
        mlflow.end_run(status="RUNNING")  # leaves the fluent API's stack; the recorder ends it


def experiment_id_for(tracking_uri: str, name: str) -> str | None:
    """The id of experiment `name`; None if there is none or the server cannot be reached."""
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(tracking_uri).get_experiment_by_name(name)
    except Exception as exc:
        if outage_reason(exc) is None:
            raise
        return None
    return found.experiment_id if found else None
