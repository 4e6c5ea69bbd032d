"""The comparison figures of a sweep (PNG): best value per swept value, curves, train/test gap.

Drawn with matplotlib's Agg backend from `SweepData` and its summary table; each plotting
function returns a `PlotInfo` naming the series it drew, panel by panel. The helpers that group
trials into panels and series are shared with `raysweep.report.landscape` (the loss bands).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysweep.ranking import finite
from raysweep.report.tables import LR_AXIS, SEED_AXIS, SweepData, config_axes, value_key


@dataclass
class PlotInfo:
    """A written plot: its file and, per panel, its title and the labels of the series drawn."""

    path: Path
    panels: list[tuple[str, list[str]]]

    @property
    def series(self) -> int:
        """Series drawn over all panels."""
        return sum(len(labels) for _, labels in self.panels)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def short_name(path: str) -> str:
    """A swept parameter's short name in legends: lr, bs, seed, optimizer, batchnorm, ..."""
    aliases = {LR_AXIS: "lr", "train.batch_size": "bs", SEED_AXIS: "seed"}
    parts = path.split(".")
    if len(parts) > 1 and parts[-1] == "name":  # train.optimizer.name -> optimizer
        return parts[-2]
    return aliases.get(path, parts[-1])


def series_label(axes: list[str], values: tuple[str, ...]) -> str:
    """A series' legend label from its values of `axes` (`lenet, lr=1e-3`; 'all' for none)."""
    parts = []
    for axis, value in zip(axes, values, strict=True):
        parts.append(value if axis == "model.name" else f"{short_name(axis)}={value}")
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


def panel_rows(sweep: SweepData, table: pd.DataFrame, axis: str) -> list[dict[str, Any]]:
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


def group_by(rows: list[dict[str, Any]], axes: list[str]) -> dict[tuple[str, ...], list[dict]]:
    """Rows by their values of `axes`, groups in value order (numbers numerically)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(value_key(row.get(a)) for a in axes), []).append(row)

    def order(item: tuple[tuple[str, ...], list[dict[str, Any]]]) -> list[tuple[int, float, str]]:
        raw = [item[1][0].get(a) for a in axes]
        return [
            (0, n, "") if (n := finite(v)) is not None else (1, 0.0, k)
            for v, k in zip(raw, item[0], strict=True)
        ]

    return dict(sorted(groups.items(), key=order))


def add_legend(ax: Any, count: int) -> None:
    """A legend for `count` series: none for one, outside the axes for more than ten."""
    if count > 1:
        if count > 10:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            ax.legend(fontsize=7)


def labels_drawn(ax: Any) -> list[str]:
    """The labels of the series drawn on `ax`."""
    return list(ax.get_legend_handles_labels()[1])


def save_figure(fig: Any, plt: Any, path: Path, panels: list[tuple[str, list[str]]]) -> PlotInfo:
    """Write `fig` to `path` (90 dpi), close it, and describe what it shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return PlotInfo(path=path, panels=panels)


def plot_best_by_axis(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "best_test_acc"
) -> PlotInfo:
    """Best test accuracy per value of each swept parameter: one panel per axis, one series per
    combination of the other axes; with repeats, the mean over seeds with std error bars."""
    plt = pyplot()
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
        rows = panel_rows(sweep, table, axis) if axis != "trial_id" else table.to_dict("records")
        raw = {value_key(r.get(axis)): r.get(axis) for r in rows}
        order = _sort_keys((value_key(r.get(axis)) for r in rows), raw)
        numeric = all(finite(raw[k]) is not None for k in order)
        position = {k: i for i, k in enumerate(order)}
        groups = group_by(rows, others)
        offset_step = 0.08 if len(groups) > 1 else 0.0
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
            x = [position[k] + shift for k in xs]
            mean = [float(np.mean(by_x[k])) for k in xs]
            std = [float(np.std(by_x[k], ddof=1)) if len(by_x[k]) > 1 else 0.0 for k in xs]
            label = series_label(others, values)
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
        add_legend(ax, len(groups))
        info.append((axis, labels_drawn(ax)))
    fig.suptitle(f"{sweep.name}: {metric} per swept value", fontsize=10)
    return save_figure(fig, plt, path, info)


def plot_curves(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "test_acc"
) -> PlotInfo:
    """`metric` per epoch of every trial (one line per trial, legend in summary order)."""
    plt = pyplot()
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
    labels = labels_drawn(ax)
    add_legend(ax, max(len(labels), 2) if labels else 0)
    return save_figure(fig, plt, path, [(metric, labels)])


def plot_gap(sweep: SweepData, table: pd.DataFrame, path: Path) -> PlotInfo:
    """Train/test gap (train_acc - test_acc) of every trial at its last epoch, one bar each."""
    plt = pyplot()
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
    return save_figure(fig, plt, path, [("gap", labels)])
