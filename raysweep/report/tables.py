"""A sweep as tables (`SweepData`) and the summary tables made from it.

Pure functions over plain tables, no MLflow: `SweepData` holds one row per trial, the per-epoch
history and the per-step training losses, however they were obtained (read back from MLflow by
`raysweep.report.read`, or made by hand in the tests). `summary_table` gives one row per trial,
`grouped_summary` the mean and std over seeds per configuration; both rank with
`raysweep.ranking`, the one rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysweep.plan import format_value
from raysweep.ranking import best, finite, ranked

SEED_AXIS = "train.seed"
LR_AXIS = "train.optimizer.lr"
# Per-trial columns of the summary, after the swept parameters. The best train values and
# their epochs sit beside the best test ones, as seed 004's tables give them; `duration_s` is
# the trial's `train_time_s` (the sum of its epochs' times), `num_params` its model's size.
METRIC_COLUMNS = (
    "best_test_acc",
    "best_epoch",
    "best_train_acc",
    "best_train_acc_epoch",
    "test_acc",
    "train_acc",
    "train_eval_acc",
    "best_test_loss",
    "best_test_loss_epoch",
    "best_train_loss",
    "best_train_loss_epoch",
    "test_loss",
    "train_loss",
    "gap",
    "epochs",
    "duration_s",
    "num_params",
)
INT_COLUMNS = (
    "best_epoch",
    "best_train_acc_epoch",
    "best_test_loss_epoch",
    "best_train_loss_epoch",
    "epochs",
    "num_params",
)
# Best value of a per-epoch metric and its epoch: (metric, pick, best column, epoch column).
BESTS = (
    ("test_acc", "max", "best_test_acc", "best_epoch"),
    ("train_acc", "max", "best_train_acc", "best_train_acc_epoch"),
    ("test_loss", "min", "best_test_loss", "best_test_loss_epoch"),
    ("train_loss", "min", "best_train_loss", "best_train_loss_epoch"),
)
# Aggregated over seeds when the sweep has repeats.
GROUPED_METRICS = ("best_test_acc", "test_acc", "gap", "test_loss", "best_epoch")


@dataclass
class SweepData:
    """A sweep as tables.

    trials: one row per trial with `trial_id name status run_id studies`, one column per
        swept parameter (its value, also for trials that did not override it, where known), the
        final metrics (`best_test_acc best_epoch test_acc train_acc test_loss train_loss gap`,
        the best train/test values and epochs of `BESTS`, `train_time_s`; any may be missing:
        they are filled from `history`), and where known `num_params` and `model_name`.
    history: one row per trial and epoch: `trial_id epoch` and the per-epoch metrics
        (`train_eval_acc train_eval_loss` too where the trial ran the clean train pass).
    steps: one row per trial and optimizer step: `trial_id step epoch lr loss`.
    per_class: one row per trial and class: `trial_id class accuracy` (the class's recall on
        the test set at the trial's last epoch), in the dataset's class order.
    axes: the swept parameters (dotted paths), in plan order.
    overrides: trial_id -> the swept parameters that trial set (OFAT panels use it); a trial
        missing here is taken to set every axis it has a value for.
    """

    name: str
    trials: pd.DataFrame
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    axes: list[str] = field(default_factory=list)
    overrides: dict[str, set[str]] = field(default_factory=dict)
    metric: str = "test_acc"
    goal: str = "max"
    parent_run_id: str | None = None


def default_goal(metric: str) -> str:
    """'max' for accuracies, 'min' for losses and the train/test gap."""
    return "min" if ("loss" in metric or metric == "gap") else "max"


def config_axes(axes: list[str]) -> list[str]:
    """The swept parameters that define a configuration (every axis but the seed)."""
    return [a for a in axes if a != SEED_AXIS]


def value_key(value: Any) -> str:
    """A swept value as a grouping key: its text, or 'base' where the trial has none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "base"
    return format_value(value)


def _cell_value(value: Any) -> Any:
    """A swept value as a table cell: scalars stay, lists and mappings become compact text."""
    if isinstance(value, list | tuple | dict):
        return format_value(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _axis_column(values: Iterable[Any]) -> list[Any]:
    cells = [_cell_value(v) for v in values]
    kinds = {type(v) for v in cells if v is not None}
    if kinds <= {int, float} or len(kinds) <= 1:
        return cells
    return [None if v is None else format_value(v) for v in cells]  # mixed: all text


def _from_history(history: pd.DataFrame, trial_id: str) -> dict[str, Any]:
    """Final and best metrics of one trial computed from its per-epoch history: the last
    epoch's values, each `BESTS` value with its (first) epoch, the duration as the sum of the
    epoch times, and the gap as train_eval_acc - test_acc where the clean pass was logged."""
    if history.empty or "trial_id" not in history:
        return {}
    rows = history[history["trial_id"] == trial_id].sort_values("epoch")
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    out: dict[str, Any] = {"epochs": int(last["epoch"])}
    for key in ("test_acc", "train_acc", "train_eval_acc", "test_loss", "train_loss", "gap"):
        if key in rows:
            out[key] = last[key]
    for key, pick, best_key, epoch_key in BESTS:
        if key in rows and rows[key].notna().any():
            top = rows.loc[rows[key].idxmax() if pick == "max" else rows[key].idxmin()]
            out[best_key] = float(top[key])
            out[epoch_key] = int(top["epoch"])
    if "epoch_time_s" in rows and rows["epoch_time_s"].notna().any():
        out["duration_s"] = float(rows["epoch_time_s"].sum())
    clean, test = finite(out.get("train_eval_acc")), finite(out.get("test_acc"))
    if clean is not None and test is not None:
        out["gap"] = clean - test
    return out


def _metric_cell(raw: dict[str, Any], filled: dict[str, Any], key: str) -> Any:
    """One metric of a summary row: the logged final value, else the one from the history.
    The duration is the logged `train_time_s`, else the sum of the epoch times (never MLflow's
    run start and end); the gap is recomputed where the clean train pass was logged."""
    if key == "duration_s":
        value = finite(raw.get("train_time_s"))
        value = value if value is not None else finite(filled.get("duration_s"))
        return value if value is not None else finite(raw.get("duration_s"))
    if key == "gap" and finite(filled.get("train_eval_acc")) is not None:
        return finite(filled.get("gap"))
    value = finite(raw.get(key))
    return value if value is not None else finite(filled.get(key))


def summary_table(sweep: SweepData) -> pd.DataFrame:
    """One row per trial: id, name, status, every swept parameter, final and best metrics,
    epochs, duration, parameter count, run id and studies; best first (failed and diverged
    trials last)."""
    rows = []
    for raw in sweep.trials.to_dict("records"):
        filled = _from_history(sweep.history, raw["trial_id"])
        row: dict[str, Any] = {
            "trial_id": raw["trial_id"],
            "name": raw.get("name") or raw["trial_id"],
            "status": raw.get("status") or "unknown",
        }
        for axis in sweep.axes:
            row[axis] = raw.get(axis)
        for key in METRIC_COLUMNS:
            row[key] = _metric_cell(raw, filled, key)
        row["run_id"] = raw.get("run_id") or ""
        row["studies"] = raw.get("studies") or ""
        rows.append(row)
    rows = sort_rows(rows, sweep.metric, sweep.goal)
    columns = ["trial_id", "name", "status", *sweep.axes, *METRIC_COLUMNS, "run_id", "studies"]
    table = pd.DataFrame(rows, columns=columns)
    for axis in sweep.axes:
        table[axis] = pd.Series(_axis_column(table[axis]), index=table.index, dtype=object)
    for key in INT_COLUMNS:
        table[key] = pd.array(
            [None if finite(v) is None else int(v) for v in table[key]], dtype="Int64"
        )
    return table


def _describe(row: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    return row, str(row.get("status", "")), str(row["trial_id"])


def sort_rows(rows: list[dict[str, Any]], metric: str, goal: str) -> list[dict[str, Any]]:
    """Rows best first (raysweep.ranking's rule)."""
    return ranked(rows, metric, goal, _describe)


def best_row(table: pd.DataFrame, metric: str, goal: str) -> dict[str, Any] | None:
    """The best trial of a summary table (None when no trial may be best)."""
    return best(table.to_dict("records"), metric, goal, _describe)


def has_repeats(table: pd.DataFrame, axes: list[str]) -> bool:
    """True when some configuration was run with more than one seed."""
    if SEED_AXIS not in axes or table.empty:
        return False
    keys = [tuple(value_key(r[a]) for a in config_axes(axes)) for r in table.to_dict("records")]
    return len(set(keys)) < len(keys)


def grouped_summary(
    table: pd.DataFrame, axes: list[str], metric: str = "test_acc", goal: str = "max"
) -> pd.DataFrame:
    """Mean and sample std over seeds of each configuration (rows grouped by the swept
    parameters minus `train.seed`); `n` counts the trials with a result. Best mean first
    (raysweep.ranking's rule over the means; ties keep the order of first appearance)."""
    group_axes = config_axes(axes)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in table.to_dict("records"):
        groups.setdefault(tuple(value_key(row[a]) for a in group_axes), []).append(row)
    out = []
    for members in groups.values():
        row: dict[str, Any] = {a: members[0][a] for a in group_axes}
        row["trials"] = len(members)
        seeds = sorted({s for r in members if (s := r.get(SEED_AXIS)) is not None}, key=str)
        seeds.sort(key=lambda s: (finite(s) is None, finite(s) or 0.0))
        row["seeds"] = ",".join(format_value(s) for s in seeds)
        values = {
            m: [v for r in members if (v := finite(r.get(m))) is not None] for m in GROUPED_METRICS
        }
        row["n"] = len(values["best_test_acc"]) or len(values["test_acc"])
        for m, vals in values.items():
            row[f"{m}_mean"] = float(np.mean(vals)) if vals else None
            row[f"{m}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        out.append(row)

    def means(row: dict[str, Any]) -> tuple[Mapping[str, Any], str, str]:
        # A configuration has no status of its own; the same id for all keeps ties in order.
        return {m: row.get(f"{m}_mean") for m in (metric, f"best_{metric}")}, "", ""

    frame = pd.DataFrame(ranked(out, metric, goal, means))
    for axis in group_axes:
        frame[axis] = pd.Series(_axis_column(frame[axis]), index=frame.index, dtype=object)
    return frame


def write_tables(table: pd.DataFrame, path_stem: Path) -> list[Path]:
    """`<stem>.parquet` and `<stem>.csv` of a table; returns the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path_stem.parent.mkdir(parents=True, exist_ok=True)
    parquet = path_stem.with_suffix(".parquet")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), parquet)
    csv = path_stem.with_suffix(".csv")
    table.to_csv(csv, index=False)
    return [parquet, csv]
