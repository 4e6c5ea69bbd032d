"""An MLflow store opened for reading, and a sweep's runs in it.

`open_store` finds the experiment (a missing store or experiment is a `UserError` that names
what is there, and nothing is created); `find_parent` and `child_runs` find a sweep's parent
run and its trial runs; the small helpers turn a run's params, tags and times back into values.
Read only: nothing here writes to MLflow.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from raysweep.errors import UserError
from raysweep.records import TAG_ROLE, TAG_STATUS, TAG_TRIAL
from raysweep.tracking import resolve_tracking_uri

TAG_PARENT = "mlflow.parentRunId"


@dataclass
class Store:
    """An MLflow store opened for reading: the client, its URI and one experiment."""

    client: Any
    uri: str
    experiment_id: str
    experiment_name: str
    # Each run's artifact URI, as the searches here found them (`artifact_file`).
    artifact_roots: dict[str, str] = field(default_factory=dict)


def parse_param(text: str | None) -> Any:
    """An MLflow param (always text) back to a value: '0.001' -> 0.001, 'True' -> True,
    'None' -> None, '[16, 32]' -> [16, 32]; anything else stays text."""
    if text is None or text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
        return value if math.isfinite(value) or text.lower() in ("inf", "-inf", "nan") else text
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def open_store(experiment: str, tracking_uri: str | None) -> Store:
    """The experiment `experiment` (name, or id) of the store at `tracking_uri`."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    prefix = next((p for p in ("sqlite:///", "file://") if uri.startswith(p)), None)
    if prefix is not None:
        path = Path(uri[len(prefix) :])
        if not path.exists():
            raise UserError(
                f"no MLflow store at {path}: pass --tracking-uri (or set MLFLOW_TRACKING_URI) "
                "to the store the sweep wrote to"
            )
    client = MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None and experiment.isdigit():
            found = client.get_experiment(experiment)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a bad store
        if "does not exist" not in str(exc) and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
            raise UserError(f"cannot read the MLflow store {uri}: {_first_line(exc)}") from None
        found = None
    if found is None or found.lifecycle_stage == "deleted":
        names = [e.name for e in client.search_experiments() if e.name != "Default"]
        known = ", ".join(sorted(names)[:20]) or "none"
        raise UserError(f"no experiment {experiment!r} in {uri} (experiments there: {known})")
    return Store(client, uri, found.experiment_id, found.name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _search(store: Store, filter_string: str, order_by: list[str] | None = None) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = store.client.search_runs(
            [store.experiment_id], filter_string, order_by=order_by, page_token=token
        )
        runs.extend(page)
        store.artifact_roots.update((r.info.run_id, r.info.artifact_uri) for r in page)
        token = page.token
        if not token:
            return runs


def sweep_parents(store: Store) -> list[Any]:
    """Every sweep (parent) run of the experiment, newest first."""
    return _search(store, f"tags.`{TAG_ROLE}` = 'sweep'", ["attributes.start_time DESC"])


def find_parent(store: Store, parent_id: str | None = None) -> Any:
    """The sweep run `parent_id`, or the newest sweep run of the experiment."""
    if parent_id:
        try:
            run = store.client.get_run(parent_id)
        except Exception:  # noqa: BLE001
            raise UserError(f"no run {parent_id!r} in {store.uri}") from None
        if run.info.experiment_id != store.experiment_id:
            raise UserError(f"run {parent_id} is not in experiment {store.experiment_name!r}")
        return run
    parents = sweep_parents(store)
    if not parents:
        raise UserError(
            f"experiment {store.experiment_name!r} has no raysweep sweep runs "
            f"(no run tagged {TAG_ROLE}=sweep)"
        )
    return parents[0]


def child_runs(store: Store, parent_id: str) -> list[Any]:
    """The trial runs under a sweep run, by trial id (the newest run where a trial has two)."""
    runs = _search(store, f"tags.`{TAG_PARENT}` = '{parent_id}'", ["attributes.start_time ASC"])
    by_trial: dict[str, Any] = {}
    for run in runs:
        by_trial[run.data.tags.get(TAG_TRIAL, run.info.run_id)] = run
    return [by_trial[k] for k in sorted(by_trial)]


def download_text(store: Store, run_id: str, path: str) -> str | None:
    """The text of one artifact of a run, or None if it has none at `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        local = artifact_file(store, run_id, path, Path(tmp))
        return local.read_text() if local is not None else None


def artifact_file(store: Store, run_id: str, path: str, tmp: Path) -> Path | None:
    """One artifact of a run as a local file, None if the run has none at `path`: read where
    it is when the run's artifacts are in a local directory (a file:// store, the default),
    else downloaded into `tmp` (MLflow's download copies even a local file, through a thread
    pool: a tenth of a second an artifact, dozens of them in a report)."""
    root = store.artifact_roots.get(run_id)
    if root is None:
        try:
            root = store.artifact_roots[run_id] = store.client.get_run(run_id).info.artifact_uri
        except Exception:  # noqa: BLE001 - no such run: nothing to read
            return None
    directory = _local_directory(root)
    if directory is not None:
        file = directory / path
        return file if file.is_file() else None
    try:
        return Path(store.client.download_artifacts(run_id, path, str(tmp)))
    except Exception:  # noqa: BLE001 - missing artifact
        return None


def _local_directory(uri: str) -> Path | None:
    """The directory an artifact URI names on this machine, None for a remote one."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if not parsed.scheme and uri.startswith("/"):
        return Path(uri)
    return None


def run_status(run: Any) -> str:
    """A trial run's raysweep status (finished, stopped, diverged, ...), else MLflow's."""
    return run.data.tags.get(TAG_STATUS) or run.info.status.lower()


def run_duration(run: Any) -> float | None:
    """Seconds from a run's start to its end (one decimal), None while it has no end."""
    if run.info.end_time and run.info.start_time:
        return round((run.info.end_time - run.info.start_time) / 1000.0, 1)
    return None


def model_uri_of(run: Any) -> str | None:
    """`runs:/<id>/model` when the run logged a model, else None."""
    outputs = getattr(run, "outputs", None)
    if outputs is not None and getattr(outputs, "model_outputs", None):
        return f"runs:/{run.info.run_id}/model"
    return None
