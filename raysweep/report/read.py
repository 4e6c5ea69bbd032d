"""Read a sweep back from MLflow alone: its runs, their params, metric histories and step logs.

Works on finished and interrupted sweeps and on stores written on another machine: nothing here
needs the Ray storage or the process that ran the sweep. `read_sweep` returns the `SweepData`
that the tables and plots take; `parent_texts` the parent run's sweep.yaml and plan.json.
Numbers a run does not have (an older run logged no `num_params`, `train_time_s` or best train
values) are left missing, and the tables fill what they can from the per-epoch history.
Read only: nothing here writes to MLflow.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from raysweep.ranking import finite
from raysweep.records import LOGGED_PER_EPOCH, PARAM_NUM_PARAMS, TAG_OVERRIDES, TAG_TRIAL
from raysweep.report.store import (
    Store,
    artifact_file,
    child_runs,
    download_text,
    find_parent,
    open_store,
    parse_param,
    run_status,
)
from raysweep.report.tables import BESTS, LR_AXIS, SweepData, default_goal

FINAL_METRICS = ("best_test_acc", "best_epoch", "test_acc", "train_acc", "test_loss")
FINAL_METRICS += ("train_loss", "gap", "train_time_s")
FINAL_METRICS += tuple(k for _, _, best, epoch in BESTS[1:] for k in (best, epoch))
# Per-epoch metrics (the clean train pass's `train_eval_acc train_eval_loss` among them).
HISTORY_METRICS = LOGGED_PER_EPOCH


def read_plan(store: Store, parent_id: str) -> list[dict[str, Any]] | dict[str, Any] | None:
    """The parent's plan.json (every planned trial with its overrides; for an adaptive search
    the space it searched), if it was logged."""
    text = download_text(store, parent_id, "plan.json")
    return json.loads(text) if text else None


def read_steps(store: Store, run_id: str) -> pd.DataFrame | None:
    """A trial's per-step training losses (steps.parquet: step, epoch, lr, loss), if logged."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        local = artifact_file(store, run_id, "steps.parquet", Path(tmp))
        # None: a trial that failed before its first checkpoint
        return pq.read_table(local).to_pandas() if local is not None else None


def read_per_class(store: Store, run_id: str) -> pd.DataFrame | None:
    """A trial's per_class_accuracy.json ({class: recall}) as rows `class accuracy`, in the
    file's (the dataset's) class order; None when the run has none."""
    text = download_text(store, run_id, "per_class_accuracy.json")
    if not text:
        return None
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, dict) or not values:
        return None
    return pd.DataFrame(
        {"class": [str(k) for k in values], "accuracy": [float(v) for v in values.values()]}
    )


def read_history(store: Store, run_id: str, keys: Iterable[str] = HISTORY_METRICS) -> pd.DataFrame:
    """A trial's per-epoch metrics, one row per epoch (step = epoch)."""
    by_epoch: dict[int, dict[str, float]] = {}
    for key in keys:
        for m in store.client.get_metric_history(run_id, key):
            by_epoch.setdefault(int(m.step), {})[key] = float(m.value)
    rows = [{"epoch": e, **values} for e, values in sorted(by_epoch.items())]
    return pd.DataFrame(rows)


def _num_params(run: Any) -> int | None:
    """The model's parameter count: the run's `num_params` param (or a metric of that name)."""
    value = parse_param(run.data.params.get(PARAM_NUM_PARAMS))
    if value is None:
        value = run.data.metrics.get(PARAM_NUM_PARAMS)
    number = finite(value)
    return int(number) if number is not None else None


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
    with_per_class: bool = True,
) -> SweepData:
    """A sweep as `SweepData`, from MLflow alone. Trials of the plan that never
    started (an interrupted sweep) are rows with status 'not started'. Step logs are read
    when asked, or by default when the learning rate is swept (the loss-landscape band);
    each trial's per_class_accuracy.json unless `with_per_class` is False."""
    store = open_store(experiment, tracking_uri)
    parent = find_parent(store, parent_id)
    pid = parent.info.run_id
    runs = child_runs(store, pid)
    plan = read_plan(store, pid)
    if isinstance(plan, dict):  # an adaptive search: each run's tag says what it was given
        plan = [
            {
                "trial_id": r.data.tags.get(TAG_TRIAL, r.info.run_id),
                "overrides": json.loads(r.data.tags.get(TAG_OVERRIDES, "{}")),
            }
            for r in sorted(runs, key=lambda r: r.data.tags.get(TAG_TRIAL, ""))
        ]
    axes = _axes(plan, runs)
    planned = {t["trial_id"]: t for t in plan or []}
    rows, histories, steps, per_class = [], [], [], []
    read_steps_too = with_steps if with_steps is not None else LR_AXIS in axes
    for run in runs:
        tid = run.data.tags.get(TAG_TRIAL, run.info.run_id)
        overrides = planned.get(tid, {}).get("overrides", {})
        row: dict[str, Any] = {
            "trial_id": tid,
            "name": run.info.run_name,
            "status": run_status(run),
            "run_id": run.info.run_id,
            "studies": run.data.tags.get("raysweep.studies", ""),
            "epochs": parse_param(run.data.tags.get("raysweep.epochs_run")),
            "model_name": run.data.params.get("model.name"),
            "num_params": _num_params(run),
        }
        for axis in axes:
            row[axis] = (
                overrides[axis] if axis in overrides else parse_param(run.data.params.get(axis))
            )
        row.update({k: run.data.metrics[k] for k in FINAL_METRICS if k in run.data.metrics})
        rows.append(row)
        logged = [k for k in HISTORY_METRICS if k in run.data.metrics]
        history = read_history(store, run.info.run_id, logged)
        if not history.empty:
            histories.append(history.assign(trial_id=tid))
        classes = read_per_class(store, run.info.run_id) if with_per_class else None
        if classes is not None:
            per_class.append(classes.assign(trial_id=tid))
        if read_steps_too:
            step_log = read_steps(store, run.info.run_id)
            if step_log is not None and not step_log.empty:
                steps.append(step_log.assign(trial_id=tid))
    seen = {r["trial_id"] for r in rows}
    for tid, trial in planned.items():
        if tid not in seen:
            row = {"trial_id": tid, "name": trial.get("name", tid), "status": "not started"}
            row["studies"] = ",".join(trial.get("studies") or [])
            row.update({a: trial["overrides"].get(a) for a in axes})
            rows.append(row)
    metric = parent.data.params.get("metric", "test_acc")
    return SweepData(
        name=store.experiment_name,
        trials=pd.DataFrame(rows),
        history=pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
        steps=pd.concat(steps, ignore_index=True) if steps else pd.DataFrame(),
        per_class=pd.concat(per_class, ignore_index=True) if per_class else pd.DataFrame(),
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
        text = download_text(store, parent_id, name)
        if text is not None:
            texts[name] = text
    return texts
