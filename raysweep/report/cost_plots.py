"""Accuracy against what it cost: the model's parameter count and the trial's training time.

Seed 003 compares its models by size and speed ("性能总结": 参数量, 训练时间); seed 001 gives
each configuration's training time. Two panels, one point per trial, one color per model
(`model.name`), the trial ids written beside the points when there are few. The time is the
trial's `train_time_s`, the sum of its epoch times (the summary's `duration_s`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from raysweep.ranking import finite
from raysweep.report.plotkit import (
    PlotInfo,
    add_legend,
    figure,
    legend_width,
    palette,
    save_figure,
)
from raysweep.report.tables import SweepData

ANNOTATE_POINTS = 16  # trial ids beside the points up to this many points
COSTS = (
    ("num_params", "parameters (log scale)", True),
    ("duration_s", "training time: train_time_s, sum of epoch times (s)", False),
)


def _models(sweep: SweepData) -> dict[str, str]:
    if "model_name" not in sweep.trials:
        return {}
    pairs = sweep.trials[["trial_id", "model_name"]].dropna()
    return {str(t): str(m) for t, m in pairs.itertuples(index=False)}


def cost_points(
    sweep: SweepData, table: pd.DataFrame, metric: str
) -> dict[str, list[dict[str, Any]]]:
    """Per cost column, the trials with a finite cost and `metric`: trial_id, model, x, y."""
    models = _models(sweep)
    points: dict[str, list[dict[str, Any]]] = {}
    for key, _, _ in COSTS:
        if key not in table or metric not in table:
            continue
        for row in table.to_dict("records"):
            x, y = finite(row.get(key)), finite(row.get(metric))
            if x is not None and y is not None and x > 0:
                model = models.get(str(row["trial_id"]), "")
                item = {"trial_id": row["trial_id"], "model": model, "x": x, "y": y}
                points.setdefault(key, []).append(item)
    return points


def plot_accuracy_vs_cost(
    sweep: SweepData, table: pd.DataFrame, path: Path, metric: str = "best_test_acc"
) -> PlotInfo | None:
    """`metric` against parameter count and against training time (None when the sweep has
    neither: runs from before raysweep logged `num_params` and `train_time_s`, no history)."""
    points = cost_points(sweep, table, metric)
    if not points:
        return None
    models = sorted({p["model"] for ps in points.values() for p in ps})
    colors = dict(zip(models, palette(len(models)), strict=True))
    width = 5.2 * len(points) + 0.5 + legend_width(len(models), max(map(len, models)) + 2)
    plt, fig, axes = figure(width, 4.4, ncols=len(points), squeeze=False)
    info = []
    for ax, (key, xlabel, log) in zip(axes.flat, [c for c in COSTS if c[0] in points], strict=True):
        shown = points[key]
        labels = []
        for model in models:
            group = [p for p in shown if p["model"] == model]
            if not group:
                continue
            ax.scatter(
                [p["x"] for p in group],
                [100 * p["y"] for p in group],
                color=colors[model],
                label=model or "trials",
                s=28,
            )
            labels.append(model or "trials")
        if len(shown) <= ANNOTATE_POINTS:
            for p in shown:
                ax.annotate(
                    str(p["trial_id"]),
                    (p["x"], 100 * p["y"]),
                    textcoords="offset points",
                    xytext=(4, 3),
                    fontsize=6,
                )
        if log:
            ax.set_xscale("log")
        ax.margins(0.12)  # room for the ids written beside the outermost points
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
        info.append((key, [str(p["trial_id"]) for p in shown]))
    entries: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    legend = add_legend(axes.flat[-1], list(entries.values()), list(entries), title="model")
    title = f"{sweep.name}: {metric} against model size and training time"
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, plt, path, info, [legend], title)
