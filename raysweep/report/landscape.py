"""The loss landscape of a sweep: min-max bands of training loss per optimizer step.

For each group of trials that differ only in learning rate (and seed), the band spans the
lowest and highest training loss over those trials at each step, from their step logs
(`SweepData.steps`). `loss_bands` computes them, `plot_loss_bands` draws loss_landscape.png.

How a band ends (`BAND_CUTS`): `none` (the default) keeps every step some trial of the group
reached, so a trial that stopped early (ASHA, early stopping) leaves the band where it stopped;
`shortest` cuts each band at the last step of its shortest trial, as seed 003's script does
(`min_length = min(len(losses) ...)`), so every step of the band spans every trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep.report.plotkit import (
    PlotInfo,
    add_legend,
    figure,
    group_by,
    labels_drawn,
    legend_width,
    palette,
    panel_rows,
    save_figure,
    series_label,
    short_name,
)
from raysweep.report.tables import LR_AXIS, SweepData, config_axes

BAND_CUTS = ("none", "shortest")


@dataclass
class Band:
    """The loss-landscape band of one group: min and max training loss over its trials per step."""

    label: str
    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    trials: list[str]
    cut_at: int | None = None  # the last step kept by `cut="shortest"`


def loss_bands(
    sweep: SweepData, table: pd.DataFrame, band_axis: str = LR_AXIS, cut: str = "none"
) -> list[Band]:
    """Per group of the other swept parameters, the min and max over its trials (the values of
    `band_axis`, and seeds) of the training loss at each step. A step counts the trials that
    reached it (`cut="none"`), or the band stops at its shortest trial's last step
    (`cut="shortest"`); non-finite losses (divergence) are left out."""
    if cut not in BAND_CUTS:
        raise ValueError(f"band cut {cut!r}: expected one of {', '.join(BAND_CUTS)}")
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
        cut_at = None
        if cut == "shortest":
            cut_at = int(min(s.index.max() for _, s in series))
            frame = frame[frame.index <= cut_at]
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
                cut_at=cut_at,
            )
        )
    return bands


def plot_loss_bands(sweep: SweepData, bands: list[Band], path: Path) -> PlotInfo:
    """The loss landscape: one shaded min-max band of training loss per step, per group."""
    plt, fig, ax = figure(9.0 + legend_width(len(bands)), 4.8)
    for color, band in zip(palette(len(bands)), bands, strict=True):
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
    cut = any(b.cut_at is not None for b in bands)
    title = f"{sweep.name}: loss landscape over {short_name(LR_AXIS)}"
    title += " (each band cut to its shortest run)" if cut else ""
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend = add_legend(ax, minimum=1)
    return save_figure(fig, plt, path, [("loss", labels_drawn(ax))], [legend], title)
