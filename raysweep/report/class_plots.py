"""Per-class test accuracy as a chart: a heatmap of trials x classes (seed 000's 图 13).

Each trial's `per_class_accuracy.json` ({class: recall on the test set at its last epoch}) is a
row of `SweepData.per_class`; the heatmap puts a study's trials (summary order) down the side
and the dataset's classes across, the value in each cell when there is room.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raysweep.report.plotkit import PlotInfo, cut, figure, save_figure

ANNOTATE_CELLS = 240  # write the value in each cell up to this many cells (24 trials x 10)


def class_matrix(
    per_class: pd.DataFrame, trials: list[str]
) -> tuple[list[str], list[str], np.ndarray]:
    """(trials that have per-class values, in the given order; classes in the first such
    trial's order, then any others; matrix of accuracies, NaN where a trial lacks a class)."""
    if per_class.empty or "trial_id" not in per_class:
        return [], [], np.zeros((0, 0))
    have = [t for t in trials if (per_class["trial_id"] == t).any()]
    rows = per_class[per_class["trial_id"].isin(have)]
    classes = list(dict.fromkeys(rows["class"].astype(str)))
    matrix = np.full((len(have), len(classes)), np.nan)
    for i, tid in enumerate(have):
        for cls, acc in rows[rows["trial_id"] == tid][["class", "accuracy"]].itertuples(
            index=False
        ):
            matrix[i, classes.index(str(cls))] = float(acc)
    return have, classes, matrix


def plot_per_class(
    per_class: pd.DataFrame, trials: list[str], labels: dict[str, str], title: str, path: Path
) -> PlotInfo | None:
    """The per-class accuracy heatmap of `trials` (rows, labelled by `labels`); None when none
    of them logged per-class accuracy."""
    have, classes, matrix = class_matrix(per_class, trials)
    if not have:
        return None
    percent = 100 * matrix
    finite = percent[np.isfinite(percent)]
    low = float(np.floor(finite.min() / 10) * 10) if finite.size else 0.0
    plt, fig, ax = figure(min(2.6 + 0.75 * len(classes), 16.0), 1.6 + 0.3 * len(have))
    image = ax.imshow(
        np.ma.masked_invalid(percent),
        cmap="viridis",
        vmin=min(low, 90.0),
        vmax=100.0,
        aspect="auto",
    )
    rows = [cut(labels.get(t, t), 40) for t in have]
    ax.set_yticks(range(len(have)), rows, fontsize=7)
    tilt = max(len(c) for c in classes) > 5
    ax.set_xticks(
        range(len(classes)),
        [cut(c, 16) for c in classes],
        rotation=35 if tilt else 0,
        ha="right" if tilt else "center",
        fontsize=7,
    )
    if matrix.size <= ANNOTATE_CELLS:
        middle = (min(low, 90.0) + 100.0) / 2
        for (i, j), value in np.ndenumerate(percent):
            if np.isfinite(value):
                color = "white" if value < middle else "black"
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(image, ax=ax, label="test accuracy of the class (%)", shrink=0.9)
    ax.set_xlabel("class")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, plt, path, [(title, rows)], [], title, columns=classes)
