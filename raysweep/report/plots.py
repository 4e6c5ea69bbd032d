"""The overview figures of a sweep (PNG): best value per swept value, test accuracy per epoch of
every trial, and the train/test gap of every trial.

Drawn with matplotlib's Agg backend from `SweepData` and its summary table; each returns a
`PlotInfo` (`raysweep.report.plotkit`) naming the series it drew, panel by panel.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep.ranking import finite
from raysweep.report.plotkit import (
    PlotInfo,
    add_legend,
    cut,
    figure,
    group_by,
    integer_ticks,
    labels_drawn,
    legend_width,
    palette,
    panel_rows,
    save_figure,
    series_label,
    sort_keys,
)
from raysweep.report.tables import SweepData, config_axes, value_key


def plot_best_by_axis(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "best_test_acc"
) -> PlotInfo:
    """Best test accuracy per value of each swept parameter: one panel per axis, one series per
    combination of the other axes; with repeats, the mean over seeds with std error bars."""
    axes = config_axes(sweep.axes) or ["trial_id"]
    ncols = min(3, len(axes))
    nrows = math.ceil(len(axes) / ncols)
    rows_of = {
        axis: panel_rows(sweep, table, axis) if axis != "trial_id" else table.to_dict("records")
        for axis in axes
    }
    series = max(len(group_by(rows_of[a], [o for o in axes if o != a])) for a in axes)
    plt, fig, panels = figure(
        (5.0 + legend_width(series)) * ncols + 0.6,
        3.6 * nrows + 0.4,
        nrows=nrows,
        ncols=ncols,
        squeeze=False,
        sharey=True,
    )
    for ax in panels.flat[len(axes) :]:
        ax.set_visible(False)
    info, legends = [], []
    for axis, ax in zip(axes, panels.flat, strict=False):
        others = [a for a in axes if a != axis]
        rows = rows_of[axis]
        raw = {value_key(r.get(axis)): r.get(axis) for r in rows}
        order = sort_keys((value_key(r.get(axis)) for r in rows), raw)
        numeric = all(finite(raw[k]) is not None for k in order)
        position = {k: i for i, k in enumerate(order)}
        groups = group_by(rows, others)
        offset_step = 0.08 if len(groups) > 1 else 0.0
        colors = palette(len(groups))
        for g, (values, members) in enumerate(groups.items()):
            by_x: dict[str, list[float]] = {}
            for r in members:
                v = finite(r.get(metric))
                if v is not None:
                    by_x.setdefault(value_key(r.get(axis)), []).append(v)
            xs = [k for k in order if k in by_x]
            if not xs:
                continue
            shift = (g - (len(groups) - 1) / 2) * offset_step
            mean = [float(np.mean(by_x[k])) for k in xs]
            std = [float(np.std(by_x[k], ddof=1)) if len(by_x[k]) > 1 else 0.0 for k in xs]
            ax.errorbar(
                [position[k] + shift for k in xs],
                mean,
                yerr=std if any(std) else None,
                marker="o",
                capsize=3,
                color=colors[g],
                label=series_label(others, values),
                linestyle=("-" if numeric else ":") if len(xs) > 1 else "none",
            )
        tilt = len(order) > 4 or max((len(k) for k in order), default=0) > 12
        ax.set_xticks(
            range(len(order)),
            [cut(k, 28) for k in order],
            rotation=25 if tilt else 0,
            ha="right" if tilt else "center",
            fontsize=8,
        )
        ax.set_xlabel(axis, fontsize=9)
        ax.set_ylabel(metric if ax in panels[:, 0] else "")
        ax.grid(alpha=0.3)
        legends.append(add_legend(ax))
        info.append((axis, labels_drawn(ax)))
    title = f"{sweep.name}: {metric} per swept value"
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, plt, path, info, legends, title)


def trial_label(row: dict) -> str:
    """A trial in a legend or on an axis: `t003 basic_cnn lr=3e-3`, cut to fit."""
    return cut(f"{row['trial_id']} {row.get('name') or ''}".strip())


def plot_curves(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "test_acc"
) -> PlotInfo:
    """`metric` per epoch of every trial (one line per trial, legend in summary order)."""
    history = sweep.history
    rows = []
    if not history.empty and metric in history:
        for row in table.to_dict("records"):
            h = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
            if not h.empty and h[metric].notna().any():
                rows.append((row, h))
    plt, fig, ax = figure(9.0 + legend_width(len(rows)), 4.8)
    for color, (row, h) in zip(palette(len(rows)), rows, strict=True):
        ax.plot(
            h["epoch"],
            h[metric],
            marker="." if len(h) < 30 else None,
            color=color,
            label=trial_label(row),
            linewidth=1.2,
        )
    ax.set_xlabel("epoch")
    integer_ticks(ax)
    ax.set_ylabel(metric)
    title = f"{sweep.name}: {metric} per epoch"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend = add_legend(ax, minimum=1)
    return save_figure(fig, plt, path, [(metric, labels_drawn(ax))], [legend], title)


def gap_definition(table: pd.DataFrame) -> str:
    """What the table's `gap` is: train_eval_acc - test_acc where the clean train pass was
    logged, else train_acc - test_acc (running train accuracy, augmentation and dropout on)."""
    if "train_eval_acc" not in table or "gap" not in table:
        return "train_acc - test_acc"
    rows = table[table["gap"].notna()]
    clean = rows["train_eval_acc"].notna()
    if len(rows) and clean.all():
        return "train_eval_acc - test_acc"
    return "train_eval_acc (or train_acc) - test_acc" if clean.any() else "train_acc - test_acc"


def plot_gap(sweep: SweepData, table: pd.DataFrame, path: Path) -> PlotInfo:
    """Train/test gap of every trial at its last epoch, one bar each (`gap_definition`)."""
    rows = [r for r in table.to_dict("records") if finite(r.get("gap")) is not None]
    plt, fig, ax = figure(8.0, 1.3 + 0.3 * max(len(rows), 1))
    labels = [trial_label(r) for r in rows]
    gaps = [100 * float(r["gap"]) for r in rows]
    colors = ["tab:red" if g > 0 else "tab:blue" for g in gaps]
    ax.barh(range(len(rows)), gaps, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{gap_definition(table)} at the last epoch (points)")
    title = f"{sweep.name}: train/test gap per trial"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, plt, path, [("gap", labels)], [], title)
