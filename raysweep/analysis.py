"""Compare the trials of a sweep: summary rows, mean/std over seeds, comparison plots (PNG).

Pure functions over plain tables, no MLflow: `SweepData` holds one row per trial, the per-epoch
history and the per-step training losses, however they were obtained (read back from MLflow by
`mlflow_read`, or made by hand in the tests). Plots are drawn with matplotlib's Agg backend and
each plotting function returns a `PlotInfo` naming the series it drew, panel by panel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysweep.plan import format_value
from raysweep.ranking import best, finite, ranked

SEED_AXIS = "train.seed"
LR_AXIS = "train.optimizer.lr"
# Per-trial columns of the summary, after the swept parameters.
METRIC_COLUMNS = (
    "best_test_acc",
    "best_epoch",
    "test_acc",
    "train_acc",
    "test_loss",
    "train_loss",
    "gap",
    "epochs",
    "duration_s",
)
# Aggregated over seeds when the sweep has repeats.
GROUPED_METRICS = ("best_test_acc", "test_acc", "gap", "test_loss", "best_epoch")
PLOT_FILES = {
    "best_by_axis": "best_by_axis.png",
    "curves": "test_acc_curves.png",
    "gap": "gap.png",
    "loss_landscape": "loss_landscape.png",
}


@dataclass
class SweepData:
    """A sweep as tables.

    trials: one row per trial with `trial_id name status run_id studies duration_s`, one column
        per swept parameter (its value, also for trials that did not override it, where known)
        and the final metrics (`best_test_acc best_epoch test_acc train_acc test_loss train_loss
        gap epochs`; any may be missing, they are filled from `history`).
    history: one row per trial and epoch: `trial_id epoch` and the per-epoch metrics.
    steps: one row per trial and optimizer step: `trial_id step epoch lr loss`.
    axes: the swept parameters (dotted paths), in plan order.
    overrides: trial_id -> the swept parameters that trial set (OFAT panels use it); a trial
        missing here is taken to set every axis it has a value for.
    """

    name: str
    trials: pd.DataFrame
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    axes: list[str] = field(default_factory=list)
    overrides: dict[str, set[str]] = field(default_factory=dict)
    metric: str = "test_acc"
    goal: str = "max"
    parent_run_id: str | None = None


@dataclass
class PlotInfo:
    """A written plot: its file and, per panel, its title and the labels of the series drawn."""

    path: Path
    panels: list[tuple[str, list[str]]]

    @property
    def series(self) -> int:
        """Series drawn over all panels."""
        return sum(len(labels) for _, labels in self.panels)


@dataclass
class Band:
    """The loss-landscape band of one group: min and max training loss over its trials per step."""

    label: str
    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    trials: list[str]


@dataclass
class Report:
    """What `write_report` made."""

    table: pd.DataFrame
    grouped: pd.DataFrame | None
    files: list[Path]
    plots: dict[str, PlotInfo]


# ---------------------------------------------------------------------------------- tables


def default_goal(metric: str) -> str:
    """'max' for accuracies, 'min' for losses and the train/test gap."""
    return "min" if ("loss" in metric or metric == "gap") else "max"


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
    """Final and best metrics of one trial computed from its per-epoch history."""
    if history.empty or "trial_id" not in history:
        return {}
    rows = history[history["trial_id"] == trial_id].sort_values("epoch")
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    out: dict[str, Any] = {"epochs": int(last["epoch"])}
    for key in ("test_acc", "train_acc", "test_loss", "train_loss", "gap"):
        if key in rows:
            out[key] = last[key]
    if "test_acc" in rows and rows["test_acc"].notna().any():
        best = rows.loc[rows["test_acc"].idxmax()]
        out["best_test_acc"] = float(best["test_acc"])
        out["best_epoch"] = int(best["epoch"])
    return out


def summary_table(sweep: SweepData) -> pd.DataFrame:
    """One row per trial: id, name, status, every swept parameter, final and best metrics,
    epochs, duration and run id; best first (failed and diverged trials last)."""
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
            value = raw.get(key)
            if finite(value) is None:
                value = filled.get(key, value)
            row[key] = finite(value) if key != "epochs" else value
        row["run_id"] = raw.get("run_id") or ""
        row["studies"] = raw.get("studies") or ""
        rows.append(row)
    rows = sort_rows(rows, sweep.metric, sweep.goal)
    table = pd.DataFrame(rows, columns=_columns(sweep.axes))
    for axis in sweep.axes:
        table[axis] = pd.Series(_axis_column(table[axis]), index=table.index, dtype=object)
    for key in ("best_epoch", "epochs"):
        table[key] = pd.array(
            [None if finite(v) is None else int(v) for v in table[key]], dtype="Int64"
        )
    return table


def _columns(axes: list[str]) -> list[str]:
    return ["trial_id", "name", "status", *axes, *METRIC_COLUMNS, "run_id", "studies"]


def sort_rows(rows: list[dict[str, Any]], metric: str, goal: str) -> list[dict[str, Any]]:
    """Rows best first (raysweep.ranking's rule)."""
    return ranked(rows, metric, goal, _describe)


def best_row(table: pd.DataFrame, metric: str, goal: str) -> dict[str, Any] | None:
    """The best trial of a summary table (None when no trial may be best)."""
    return best(table.to_dict("records"), metric, goal, _describe)


def _describe(row: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    return row, str(row.get("status", "")), str(row["trial_id"])


def config_axes(axes: list[str]) -> list[str]:
    """The swept parameters that define a configuration (every axis but the seed)."""
    return [a for a in axes if a != SEED_AXIS]


def _key(value: Any) -> str:
    return (
        "base"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (format_value(value))
    )


def has_repeats(table: pd.DataFrame, axes: list[str]) -> bool:
    """True when some configuration was run with more than one seed."""
    if SEED_AXIS not in axes or table.empty:
        return False
    keys = [tuple(_key(r[a]) for a in config_axes(axes)) for r in table.to_dict("records")]
    return len(set(keys)) < len(keys)


def grouped_summary(
    table: pd.DataFrame, axes: list[str], metric: str = "test_acc", goal: str = "max"
) -> pd.DataFrame:
    """Mean and sample std over seeds of each configuration (rows grouped by the swept
    parameters minus `train.seed`); `n` counts the trials with a result. Best mean first."""
    group_axes = config_axes(axes)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in table.to_dict("records"):
        groups.setdefault(tuple(_key(row[a]) for a in group_axes), []).append(row)
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
    sign = -1.0 if goal == "max" else 1.0

    def key(row: dict[str, Any]) -> tuple[bool, float]:
        value = row.get(f"best_{metric}_mean", row.get(f"{metric}_mean"))
        value = finite(value)
        return value is None, sign * (value or 0.0)

    out.sort(key=key)
    frame = pd.DataFrame(out)
    for axis in group_axes:
        frame[axis] = pd.Series(_axis_column(frame[axis]), index=frame.index, dtype=object)
    return frame


# ------------------------------------------------------------------------------ text forms


def _cell(value: Any, key: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        base = key.removesuffix("_mean").removesuffix("_std")
        if base.endswith("acc") or base == "gap":
            return f"{100 * value:.2f}%"
        if base in METRIC_COLUMNS:
            return f"{value:.4g}"
        return format_value(float(value))  # a swept value: 1e-3, as in the run names
    return format_value(value) if isinstance(value, list | dict | bool) else str(value)


def display_columns(table: pd.DataFrame) -> list[str]:
    """The columns worth showing a person (no run ids, study lists or names)."""
    skip = {"run_id", "studies", "name", "train_acc", "train_loss"}
    return [c for c in table.columns if c not in skip]


def _display_grouped(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    metrics = [m for m in GROUPED_METRICS if f"{m}_mean" in frame]
    plain = [c for c in frame.columns if not c.endswith(("_mean", "_std")) and c != "trials"]
    header = plain + [f"{m} (mean ± std)" for m in metrics]
    cells = []
    for row in frame.to_dict("records"):
        line = [_cell(row[c], c) for c in plain]
        for m in metrics:
            mean, std = _cell(row[f"{m}_mean"], m), _cell(row[f"{m}_std"], m)
            line.append(mean if std == "-" else f"{mean} ± {std}")
        cells.append(line)
    return header, cells


def _rows(table: pd.DataFrame, grouped: bool) -> tuple[list[str], list[list[str]]]:
    if grouped:
        return _display_grouped(table)
    cols = display_columns(table)
    return cols, [[_cell(r[c], c) for c in cols] for r in table.to_dict("records")]


def markdown_table(table: pd.DataFrame, grouped: bool = False) -> str:
    """A summary (or grouped summary) as a Markdown table, like the seed reports' tables."""
    header, cells = _rows(table, grouped)
    if not cells:
        return "(no trials)\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def text_table(table: pd.DataFrame, grouped: bool = False, limit: int = 40) -> str:
    """A summary (or grouped summary) as aligned plain text for the terminal."""
    header, cells = _rows(table, grouped)
    if not cells:
        return "(no trials)"
    shown = cells[:limit]
    widths = [max(len(h), *(len(r[i]) for r in shown)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    if len(cells) > limit:
        lines.append(f"... {len(cells) - limit} more rows in summary.csv")
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(path: str) -> str:
    aliases = {LR_AXIS: "lr", "train.batch_size": "bs", SEED_AXIS: "seed"}
    parts = path.split(".")
    if len(parts) > 1 and parts[-1] == "name":  # train.optimizer.name -> optimizer
        return parts[-2]
    return aliases.get(path, parts[-1])


def _label(axes: list[str], values: tuple[str, ...]) -> str:
    parts = []
    for axis, value in zip(axes, values, strict=True):
        parts.append(value if axis == "model.name" else f"{_short(axis)}={value}")
    return ", ".join(parts) or "all"


def _sort_keys(keys: Iterable[str], raw: dict[str, Any]) -> list[str]:
    """Axis values in numeric order where they are all numbers, else first-seen order."""
    keys = list(dict.fromkeys(keys))
    if all(isinstance(raw[k], bool) for k in keys):
        return sorted(keys, key=lambda k: raw[k])
    numbers = {k: finite(raw[k]) for k in keys}
    if all(v is not None for v in numbers.values()):
        return sorted(keys, key=lambda k: numbers[k])
    return keys


def _panel_rows(sweep: SweepData, table: pd.DataFrame, axis: str) -> list[dict[str, Any]]:
    """Trials that vary `axis` (or the base trial, which sets no axis): one panel's points."""
    rows = []
    for row in table.to_dict("records"):
        tid = row["trial_id"]
        if tid in sweep.overrides:
            set_axes = sweep.overrides[tid] & set(sweep.axes)
            if axis not in set_axes and (set_axes - {SEED_AXIS}):
                continue
        if row.get(axis) is None and tid not in sweep.overrides:
            continue
        rows.append(row)
    return rows


def _group_by(rows: list[dict[str, Any]], axes: list[str]) -> dict[tuple[str, ...], list[dict]]:
    """Rows by their values of `axes`, groups in value order (numbers numerically)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(_key(row.get(a)) for a in axes), []).append(row)

    def order(item: tuple[tuple[str, ...], list[dict[str, Any]]]) -> list[tuple[int, float, str]]:
        raw = [item[1][0].get(a) for a in axes]
        return [
            (0, n, "") if (n := finite(v)) is not None else (1, 0.0, k)
            for v, k in zip(raw, item[0], strict=True)
        ]

    return dict(sorted(groups.items(), key=order))


def _legend(ax: Any, count: int) -> None:
    if count > 1:
        if count > 10:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            ax.legend(fontsize=7)


def _labels_drawn(ax: Any) -> list[str]:
    return list(ax.get_legend_handles_labels()[1])


def plot_best_by_axis(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "best_test_acc"
) -> PlotInfo:
    """Best test accuracy per value of each swept parameter: one panel per axis, one series per
    combination of the other axes; with repeats, the mean over seeds with std error bars."""
    plt = _pyplot()
    axes = config_axes(sweep.axes) or ["trial_id"]
    ncols = min(3, len(axes))
    nrows = math.ceil(len(axes) / ncols)
    fig, panels = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols + 1.0, 3.4 * nrows + 0.4), squeeze=False, sharey=True
    )
    for ax in panels.flat[len(axes) :]:
        ax.set_visible(False)
    info = []
    for axis, ax in zip(axes, panels.flat, strict=False):
        others = [a for a in axes if a != axis]
        rows = _panel_rows(sweep, table, axis) if axis != "trial_id" else table.to_dict("records")
        raw = {_key(r.get(axis)): r.get(axis) for r in rows}
        order = _sort_keys((_key(r.get(axis)) for r in rows), raw)
        numeric = all(finite(raw[k]) is not None for k in order)
        position = {k: i for i, k in enumerate(order)}
        groups = _group_by(rows, others)
        offset_step = 0.08 if len(groups) > 1 else 0.0
        for g, (values, members) in enumerate(groups.items()):
            by_x: dict[str, list[float]] = {}
            for r in members:
                v = finite(r.get(metric))
                if v is not None:
                    by_x.setdefault(_key(r.get(axis)), []).append(v)
            xs = [k for k in order if k in by_x]
            if not xs:
                continue
            shift = (g - (len(groups) - 1) / 2) * offset_step
            x = [position[k] + shift for k in xs]
            mean = [float(np.mean(by_x[k])) for k in xs]
            std = [float(np.std(by_x[k], ddof=1)) if len(by_x[k]) > 1 else 0.0 for k in xs]
            label = _label(others, values)
            ax.errorbar(
                x,
                mean,
                yerr=std if any(std) else None,
                marker="o",
                capsize=3,
                label=label,
                linestyle=("-" if numeric else ":") if len(xs) > 1 else "none",
            )
        tilt = len(order) > 4 or max((len(k) for k in order), default=0) > 12
        ticks = [k if len(k) <= 28 else k[:27] + "…" for k in order]
        ax.set_xticks(
            range(len(order)),
            ticks,
            rotation=25 if tilt else 0,
            ha="right" if tilt else "center",
            fontsize=8,
        )
        ax.set_xlabel(axis, fontsize=9)
        ax.set_ylabel(metric if ax in panels[:, 0] else "")
        ax.grid(alpha=0.3)
        _legend(ax, len(groups))
        info.append((axis, _labels_drawn(ax)))
    fig.suptitle(f"{sweep.name}: {metric} per swept value", fontsize=10)
    return _save(fig, plt, path, info)


def plot_curves(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "test_acc"
) -> PlotInfo:
    """`metric` per epoch of every trial (one line per trial, legend in summary order)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    history = sweep.history
    for row in table.to_dict("records"):
        if history.empty or metric not in history:
            break
        h = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
        if h.empty or h[metric].isna().all():
            continue
        ax.plot(
            h["epoch"],
            h[metric],
            marker="." if len(h) < 30 else None,
            label=f"{row['trial_id']} {row['name']}"[:48],
            linewidth=1.2,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{sweep.name}: {metric} per epoch", fontsize=10)
    ax.grid(alpha=0.3)
    labels = _labels_drawn(ax)
    _legend(ax, max(len(labels), 2) if labels else 0)
    return _save(fig, plt, path, [(metric, labels)])


def plot_gap(sweep: SweepData, table: pd.DataFrame, path: Path) -> PlotInfo:
    """Train/test gap (train_acc - test_acc) of every trial at its last epoch, one bar each."""
    plt = _pyplot()
    rows = [r for r in table.to_dict("records") if finite(r.get("gap")) is not None]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * max(len(rows), 1)))
    labels = [f"{r['trial_id']} {r['name']}"[:48] for r in rows]
    gaps = [100 * float(r["gap"]) for r in rows]
    colors = ["tab:red" if g > 0 else "tab:blue" for g in gaps]
    ax.barh(range(len(rows)), gaps, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("train_acc - test_acc at the last epoch (points)")
    ax.set_title(f"{sweep.name}: train/test gap per trial", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, plt, path, [("gap", labels)])


def loss_bands(sweep: SweepData, table: pd.DataFrame, band_axis: str = LR_AXIS) -> list[Band]:
    """Per group of the other swept parameters, the min and max over its trials (the values of
    `band_axis`, and seeds) of the training loss at each step. A step counts the trials that
    reached it; non-finite losses (divergence) are left out."""
    if band_axis not in sweep.axes or sweep.steps.empty:
        return []
    others = [a for a in config_axes(sweep.axes) if a != band_axis]
    bands = []
    for values, members in _group_by(_panel_rows(sweep, table, band_axis), others).items():
        series = []
        for row in members:
            s = sweep.steps[sweep.steps["trial_id"] == row["trial_id"]]
            if not s.empty:
                series.append((row["trial_id"], s.set_index("step")["loss"].astype(float)))
        if not series:
            continue
        frame = pd.concat([s for _, s in series], axis=1).sort_index()
        matrix = np.array(frame.to_numpy(dtype=float))  # a copy: it may be a read-only view
        matrix[~np.isfinite(matrix)] = np.nan
        keep = ~np.isnan(matrix).all(axis=1)
        if not keep.any():
            continue
        matrix = matrix[keep]
        bands.append(
            Band(
                label=_label(others, values),
                steps=frame.index.to_numpy()[keep],
                low=np.nanmin(matrix, axis=1),
                high=np.nanmax(matrix, axis=1),
                trials=[tid for tid, _ in series],
            )
        )
    return bands


def plot_loss_bands(sweep: SweepData, bands: list[Band], path: Path) -> PlotInfo:
    """The loss landscape: one shaded min-max band of training loss per step, per group."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    colors = plt.get_cmap("tab10")
    for i, band in enumerate(bands):
        color = colors(i % 10)
        ax.fill_between(
            band.steps,
            band.low,
            band.high,
            color=color,
            alpha=0.35,
            label=f"{band.label} ({len(band.trials)} trials)",
            linewidth=0,
        )
        ax.plot(band.steps, band.low, color=color, linewidth=0.6)
        ax.plot(band.steps, band.high, color=color, linewidth=0.6)
    highs = np.concatenate([b.high for b in bands]) if bands else np.array([1.0])
    lows = np.concatenate([b.low for b in bands]) if bands else np.array([1.0])
    if np.nanmin(lows) > 0 and np.nanmax(highs) > 20 * np.nanmedian(highs):
        ax.set_yscale("log")  # one exploding trial would flatten every band
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (min-max over trials)")
    ax.set_title(f"{sweep.name}: loss landscape over {_short(LR_AXIS)}", fontsize=10)
    ax.grid(alpha=0.3)
    labels = _labels_drawn(ax)
    _legend(ax, max(len(labels), 2) if labels else 0)
    return _save(fig, plt, path, [("loss", labels)])


def _save(fig: Any, plt: Any, path: Path, panels: list[tuple[str, list[str]]]) -> PlotInfo:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return PlotInfo(path=path, panels=panels)


# --------------------------------------------------------------------------------- report


def write_report(sweep: SweepData, out: Path) -> Report:
    """Every summary file and plot of a sweep into `out`:
    summary.{parquet,csv,md}, summary_by_config.{parquet,csv} (with repeats) and the PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    table = summary_table(sweep)
    files = write_tables(table, out / "summary")
    grouped = None
    md = [f"# {sweep.name}\n", markdown_table(table)]
    if has_repeats(table, sweep.axes):
        grouped = grouped_summary(table, sweep.axes, sweep.metric, sweep.goal)
        files += write_tables(grouped, out / "summary_by_config")
        md += ["\n## Mean ± std over seeds\n", markdown_table(grouped, grouped=True)]
    (out / "summary.md").write_text("\n".join(md))
    files.append(out / "summary.md")
    plots = {
        "best_by_axis": plot_best_by_axis(sweep, table, out / PLOT_FILES["best_by_axis"]),
        "curves": plot_curves(sweep, table, out / PLOT_FILES["curves"]),
        "gap": plot_gap(sweep, table, out / PLOT_FILES["gap"]),
    }
    bands = loss_bands(sweep, table)
    if bands:
        plots["loss_landscape"] = plot_loss_bands(sweep, bands, out / PLOT_FILES["loss_landscape"])
    files += [p.path for p in plots.values()]
    return Report(table=table, grouped=grouped, files=files, plots=plots)
