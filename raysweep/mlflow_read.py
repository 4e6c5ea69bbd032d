"""Read a sweep back from MLflow alone: its parent run, children, histories, step logs, plan.

Works on finished and interrupted sweeps and on stores written on another machine: nothing here
needs the Ray storage or the process that ran the sweep. `read_sweep` returns the tables
`raysweep.analysis` takes; `best_run` and `export_table` answer `raysweep best` / `export`.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from raysweep.analysis import (
    LR_AXIS,
    Report,
    SweepData,
    best_row,
    default_goal,
    summary_table,
    write_report,
)
from raysweep.config import METRICS
from raysweep.errors import UserError
from raysweep.tracking import TAG_STATUS, TAG_TRIAL, resolve_tracking_uri

TAG_ROLE = "raysweep.role"
TAG_PARENT = "mlflow.parentRunId"
FINAL_METRICS = ("best_test_acc", "best_epoch", "test_acc", "train_acc", "test_loss")
FINAL_METRICS += ("train_loss", "gap")


@dataclass
class Store:
    """An MLflow store opened for reading: the client, its URI and one experiment."""

    client: Any
    uri: str
    experiment_id: str
    experiment_name: str


@dataclass
class BestRun:
    """The best trial of a sweep, as `raysweep best` reports it."""

    run_id: str
    trial_id: str
    name: str
    status: str
    metric: str
    goal: str
    value: float
    swept: dict[str, Any]
    params: dict[str, str]
    metrics: dict[str, float]
    model_uri: str | None
    parent_run_id: str


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
            "(no run tagged raysweep.role=sweep)"
        )
    return parents[0]


def child_runs(store: Store, parent_id: str) -> list[Any]:
    """The trial runs under a sweep run, by trial id (the newest run where a trial has two)."""
    runs = _search(store, f"tags.`{TAG_PARENT}` = '{parent_id}'", ["attributes.start_time ASC"])
    by_trial: dict[str, Any] = {}
    for run in runs:
        by_trial[run.data.tags.get(TAG_TRIAL, run.info.run_id)] = run
    return [by_trial[k] for k in sorted(by_trial)]


def _download_text(store: Store, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = store.client.download_artifacts(run_id, path, tmp)
        except Exception:  # noqa: BLE001 - missing artifact
            return None
        return Path(local).read_text()


def read_plan(store: Store, parent_id: str) -> list[dict[str, Any]] | None:
    """The parent's plan.json (every planned trial with its overrides), if it was logged."""
    text = _download_text(store, parent_id, "plan.json")
    return json.loads(text) if text else None


def read_steps(store: Store, run_id: str) -> pd.DataFrame | None:
    """A trial's per-step training losses (steps.parquet: step, epoch, lr, loss), if logged."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = store.client.download_artifacts(run_id, "steps.parquet", tmp)
        except Exception:  # noqa: BLE001 - a trial that failed before its first checkpoint
            return None
        return pq.read_table(local).to_pandas()


def read_history(store: Store, run_id: str) -> pd.DataFrame:
    """A trial's per-epoch metrics, one row per epoch (step = epoch)."""
    by_epoch: dict[int, dict[str, float]] = {}
    for key in METRICS:
        for m in store.client.get_metric_history(run_id, key):
            by_epoch.setdefault(int(m.step), {})[key] = float(m.value)
    rows = [{"epoch": e, **values} for e, values in sorted(by_epoch.items())]
    return pd.DataFrame(rows)


def _status(run: Any) -> str:
    return run.data.tags.get(TAG_STATUS) or run.info.status.lower()


def _duration(run: Any) -> float | None:
    if run.info.end_time and run.info.start_time:
        return round((run.info.end_time - run.info.start_time) / 1000.0, 1)
    return None


def _axes(plan: list[dict[str, Any]] | None, runs: list[Any]) -> list[str]:
    if plan:
        seen: dict[str, None] = {}
        for trial in plan:
            for path in trial.get("overrides", {}):
                seen.setdefault(path, None)
        return list(seen)
    # No plan (not a raysweep parent, or it was lost): the params that differ between trials.
    keys = sorted({k for r in runs for k in r.data.params})
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def read_sweep(
    tracking_uri: str | None,
    experiment: str,
    parent_id: str | None = None,
    with_steps: bool | None = None,
) -> SweepData:
    """A sweep as `analysis.SweepData`, from MLflow alone. Trials of the plan that never
    started (an interrupted sweep) are rows with status 'not started'. Step logs are read
    when asked, or by default when the learning rate is swept (the loss-landscape band)."""
    store = open_store(experiment, tracking_uri)
    parent = find_parent(store, parent_id)
    pid = parent.info.run_id
    runs = child_runs(store, pid)
    plan = read_plan(store, pid)
    axes = _axes(plan, runs)
    planned = {t["trial_id"]: t for t in plan or []}
    rows, histories, steps = [], [], []
    read_steps_too = with_steps if with_steps is not None else LR_AXIS in axes
    for run in runs:
        tid = run.data.tags.get(TAG_TRIAL, run.info.run_id)
        overrides = planned.get(tid, {}).get("overrides", {})
        row: dict[str, Any] = {
            "trial_id": tid,
            "name": run.info.run_name,
            "status": _status(run),
            "run_id": run.info.run_id,
            "studies": run.data.tags.get("raysweep.studies", ""),
            "duration_s": _duration(run),
            "epochs": parse_param(run.data.tags.get("raysweep.epochs_run")),
        }
        for axis in axes:
            row[axis] = (
                overrides[axis] if axis in overrides else parse_param(run.data.params.get(axis))
            )
        row.update({k: run.data.metrics[k] for k in FINAL_METRICS if k in run.data.metrics})
        rows.append(row)
        history = read_history(store, run.info.run_id)
        if not history.empty:
            histories.append(history.assign(trial_id=tid))
        if read_steps_too:
            step_log = read_steps(store, run.info.run_id)
            if step_log is not None and not step_log.empty:
                steps.append(step_log.assign(trial_id=tid))
    seen = {r["trial_id"] for r in rows}
    for tid, trial in planned.items():
        if tid not in seen:
            row = {"trial_id": tid, "name": trial.get("name", tid), "status": "not started"}
            row.update({a: trial["overrides"].get(a) for a in axes})
            rows.append(row)
    metric = parent.data.params.get("metric", "test_acc")
    return SweepData(
        name=store.experiment_name,
        trials=pd.DataFrame(rows),
        history=pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
        steps=pd.concat(steps, ignore_index=True) if steps else pd.DataFrame(),
        axes=axes,
        overrides={t: set(p["overrides"]) for t, p in planned.items()},
        metric=metric,
        goal=parent.data.params.get("goal", default_goal(metric)),
        parent_run_id=pid,
    )


def parent_texts(tracking_uri: str | None, experiment: str, parent_id: str) -> dict[str, str]:
    """The parent run's sweep.yaml and plan.json (those it has), by file name."""
    store = open_store(experiment, tracking_uri)
    texts = {}
    for name in ("sweep.yaml", "plan.json"):
        text = _download_text(store, parent_id, name)
        if text is not None:
            texts[name] = text
    return texts


def safe_name(name: str) -> str:
    """An experiment name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def build_report(
    tracking_uri: str | None,
    experiment: str,
    out: Path | None = None,
    parent_id: str | None = None,
    log: bool = True,
) -> tuple[SweepData, Report, Path]:
    """Read a sweep from MLflow, write its summary files and plots to `out` (default
    `./raysweep-report/<experiment>`) with the parent's sweep.yaml and plan.json, and log the
    summary files and plots to the sweep's parent run. What `raysweep report` does, quietly."""
    sweep = read_sweep(tracking_uri, experiment, parent_id)
    pid = sweep.parent_run_id or ""
    if sweep.trials.empty:
        raise UserError(f"sweep run {pid} of {sweep.name!r} has no trials yet")
    out = out or Path("raysweep-report") / safe_name(sweep.name)
    report = write_report(sweep, out)
    for name, text in parent_texts(tracking_uri, experiment, pid).items():
        (out / name).write_text(text)
    if log:
        log_files(tracking_uri, pid, report.files)
    return sweep, report, out


def log_files(tracking_uri: str | None, run_id: str, files: list[Path]) -> None:
    """Log local files as artifacts at the root of a run (replacing same-named ones)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    for path in files:
        client.log_artifact(run_id, str(path))


def model_uri_of(run: Any) -> str | None:
    """`runs:/<id>/model` when the run logged a model, else None."""
    outputs = getattr(run, "outputs", None)
    if outputs is not None and getattr(outputs, "model_outputs", None):
        return f"runs:/{run.info.run_id}/model"
    return None


def best_run(
    tracking_uri: str | None,
    experiment: str,
    metric: str = "test_acc",
    goal: str | None = None,
    parent_id: str | None = None,
) -> BestRun:
    """The best trial of the newest sweep (or of `parent_id`) by `metric` (its best epoch's
    value where tracked), ranked as the summary ranks: failed and diverged trials never win."""
    sweep = read_sweep(tracking_uri, experiment, parent_id, with_steps=False)
    goal = goal or (sweep.goal if metric == sweep.metric else default_goal(metric))
    table = summary_table(replace(sweep, metric=metric, goal=goal))
    row = best_row(table, metric, goal)
    if row is None:
        raise UserError(
            f"no trial of sweep {sweep.parent_run_id} in {experiment!r} has a value of "
            f"{metric!r} (known: {', '.join(FINAL_METRICS)})"
        )
    store = open_store(experiment, tracking_uri)
    run = store.client.get_run(row["run_id"])
    value = row.get(f"best_{metric}")
    value = value if value is not None and not pd.isna(value) else row.get(metric)
    return BestRun(
        run_id=run.info.run_id,
        trial_id=row["trial_id"],
        name=run.info.run_name,
        status=row["status"],
        metric=metric,
        goal=goal,
        value=float(value),
        swept={a: row[a] for a in sweep.axes},
        params=dict(sorted(run.data.params.items())),
        metrics=dict(sorted(run.data.metrics.items())),
        model_uri=model_uri_of(run),
        parent_run_id=sweep.parent_run_id or "",
    )


def _typed_column(texts: list[str | None]) -> list[Any]:
    values = [parse_param(t) for t in texts]
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} or (len(kinds) == 1 and kinds <= {bool, str}):
        return values
    return texts  # lists, or mixed kinds: keep MLflow's text


def export_table(
    tracking_uri: str | None,
    experiment: str,
    parent_id: str | None = None,
    all_sweeps: bool = False,
) -> pd.DataFrame:
    """One row per trial run: ids, status, times, every param (typed) and final metric."""
    store = open_store(experiment, tracking_uri)
    parents = sweep_parents(store) if all_sweeps else [find_parent(store, parent_id)]
    runs = [(p.info.run_id, r) for p in parents for r in child_runs(store, p.info.run_id)]
    if not runs:
        raise UserError(f"experiment {store.experiment_name!r} has no trial runs yet")
    params = sorted({k for _, r in runs for k in r.data.params})
    metrics = sorted({k for _, r in runs for k in r.data.metrics})
    rows = []
    for pid, run in runs:
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "sweep_run_id": pid,
                "trial_id": run.data.tags.get(TAG_TRIAL, ""),
                "status": _status(run),
                "best": run.data.tags.get("raysweep.best") == "true",
                "studies": run.data.tags.get("raysweep.studies", ""),
                "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
                if run.info.start_time
                else pd.NaT,
                "duration_s": _duration(run),
                "model_uri": model_uri_of(run),
            }
        )
    table = pd.DataFrame(rows)
    for key in params:
        texts = [r.data.params.get(key) for _, r in runs]
        table[key] = pd.Series(_typed_column(texts), dtype=object)
    for key in metrics:
        table[key] = [r.data.metrics.get(key) for _, r in runs]
    return table


def write_export(table: pd.DataFrame, out: Path, fmt: str) -> None:
    """An export table as CSV or Parquet (timestamps stay UTC-aware in Parquet)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        table.to_csv(out, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pyarrow reads tz-aware pandas columns through a deprecated pandas path: convert them to
    # naive UTC for the conversion and mark the Arrow columns UTC again.
    zoned = [c for c in table.columns if isinstance(table[c].dtype, pd.DatetimeTZDtype)]
    naive = table.assign(**{c: table[c].dt.tz_convert(None) for c in zoned})
    arrow = pa.Table.from_pandas(naive, preserve_index=False)
    for column in zoned:
        index = arrow.schema.get_field_index(column)
        utc = arrow.column(column).cast(pa.timestamp("us", tz="UTC"))
        arrow = arrow.set_column(index, column, utc)
    pq.write_table(arrow, out)
