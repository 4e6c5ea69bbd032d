"""The loss landscape of a sweep: min-max bands of training loss per optimizer step.

For each group of trials that differ only in learning rate (and seed), the band spans the
lowest and highest training loss over those trials at each step, from their step logs
(`SweepData.steps`). `loss_bands` computes them, `plot_loss_bands` draws loss_landscape.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep.report.plots import (
    PlotInfo,
    add_legend,
    group_by,
    labels_drawn,
    panel_rows,
    pyplot,
    save_figure,
    series_label,
    short_name,
)
from raysweep.report.tables import LR_AXIS, SweepData, config_axes


@dataclass
class Band:
    """The loss-landscape band of one group: min and max training loss over its trials per step."""

    label: str
    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    trials: list[str]


def loss_bands(sweep: SweepData, table: pd.DataFrame, band_axis: str = LR_AXIS) -> list[Band]:
    """Per group of the other swept parameters, the min and max over its trials (the values of
    `band_axis`, and seeds) of the training loss at each step. A step counts the trials that
    reached it; non-finite losses (divergence) are left out."""
    if band_axis not in sweep.axes or sweep.steps.empty:
        return []
    others = [a for a in config_axes(sweep.axes) if a != band_axis]
    bands = []
    for values, members in group_by(panel_rows(sweep, table, band_axis), others).items():
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
                label=series_label(others, values),
                steps=frame.index.to_numpy()[keep],
                low=np.nanmin(matrix, axis=1),
                high=np.nanmax(matrix, axis=1),
                trials=[tid for tid, _ in series],
            )
        )
    return bands


def plot_loss_bands(sweep: SweepData, bands: list[Band], path: Path) -> PlotInfo:
    """The loss landscape: one shaded min-max band of training loss per step, per group."""
    plt = pyplot()
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
    ax.set_title(f"{sweep.name}: loss landscape over {short_name(LR_AXIS)}", fontsize=10)
    ax.grid(alpha=0.3)
    labels = labels_drawn(ax)
    add_legend(ax, max(len(labels), 2) if labels else 0)
    return save_figure(fig, plt, path, [("loss", labels)])
