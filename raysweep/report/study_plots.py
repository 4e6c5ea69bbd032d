"""Training curves per study (and per factor of a study), as the seed reports draw them.

Four panels over epochs, train and test accuracy and loss, one line per configuration (the
mean over its seeds), one legend for the figure. "train" is the clean eval-mode pass over train
images (`train_eval_acc`, `train_eval_loss`) where every trial of the figure logged it, else
the running values of the training epoch (augmentation and dropout on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raysweep.report.plotkit import (
    PlotInfo,
    add_legend,
    figure,
    integer_ticks,
    legend_width,
    palette,
    save_figure,
)
from raysweep.report.studies import Line
from raysweep.report.tables import SweepData

STYLES = ("-", "--", ":", "-.")
MARKERS = (None, "o", "s", "^", "v", "D", "x", "+")


def mean_curve(history: pd.DataFrame, trials: list[str], metric: str) -> pd.Series:
    """`metric` per epoch averaged over `trials` (each epoch over the trials that reached it);
    non-finite values (divergence) are left out."""
    if history.empty or metric not in history:
        return pd.Series(dtype=float)
    rows = history[history["trial_id"].isin(trials)][["epoch", metric]].astype(float)
    rows = rows.replace([np.inf, -np.inf], np.nan).dropna()
    return rows.groupby("epoch")[metric].mean().sort_index()


def train_metrics(history: pd.DataFrame, trials: list[str]) -> tuple[str, str, str]:
    """(accuracy metric, loss metric, how they were measured) for the train panels."""
    if "train_eval_acc" in history:
        rows = history[history["trial_id"].isin(trials)]
        logged = rows.groupby("trial_id")["train_eval_acc"].apply(lambda s: s.notna().any())
        if len(logged) and logged.all():
            return "train_eval_acc", "train_eval_loss", "clean eval pass"
    return "train_acc", "train_loss", "running, in training"


def _marker(style: int, points: int) -> str | None:
    """A marker telling contexts apart beyond the four line styles; dots on short curves."""
    marker = MARKERS[(style // len(STYLES)) % len(MARKERS)]
    return marker or ("." if points < 30 else None)


def _log_scale(ax: object, curves: list[pd.Series]) -> None:
    values = np.concatenate([c.to_numpy() for c in curves if len(c)]) if curves else np.array([])
    if len(values) and values.min() > 0 and values.max() > 20 * np.median(values):
        ax.set_yscale("log")  # one exploding trial would flatten every other line


def plot_lines(
    sweep: SweepData, lines: list[Line], title: str, path: Path, by_value: bool = False
) -> PlotInfo | None:
    """The four-panel curves figure of `lines` (None when none of them has a history).
    `by_value`: color by the line's factor value and style by its context (a factor figure);
    otherwise one color per line."""
    history = sweep.history
    trials = [t for line in lines for t in line.trials]
    acc_key, loss_key, how = train_metrics(history, trials)
    panels = [
        (f"train accuracy ({how})", acc_key),
        ("test accuracy", "test_acc"),
        (f"train loss ({how})", loss_key),
        ("test loss", "test_loss"),
    ]
    curves = {key: [mean_curve(history, ln.trials, key) for ln in lines] for _, key in panels}
    drawn = [i for i in range(len(lines)) if any(len(curves[k][i]) for _, k in panels)]
    if not drawn:
        return None
    values = list(dict.fromkeys(lines[i].value for i in drawn))
    contexts = list(dict.fromkeys(lines[i].context for i in drawn))
    colors = palette(len(values) if by_value else len(drawn))
    width = 10.0 + legend_width(len(drawn), max(len(lines[i].label) for i in drawn))
    plt, fig, axes = figure(width, 6.4, nrows=2, ncols=2, sharex=True)
    info = []
    for ax, (name, key) in zip(axes.flat, panels, strict=True):
        labels = []
        for n, i in enumerate(drawn):
            curve, line = curves[key][i], lines[i]
            if not len(curve):
                continue
            style = contexts.index(line.context) if by_value else 0
            ax.plot(
                curve.index,
                curve.to_numpy(),
                color=colors[values.index(line.value)] if by_value else colors[n],
                linestyle=STYLES[style % len(STYLES)],
                marker=_marker(style, len(curve)),
                markersize=3,
                linewidth=1.2,
                label=line.label,
            )
            labels.append(line.label)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        integer_ticks(ax)
        if "loss" in key:
            ax.set_xlabel("epoch")
            _log_scale(ax, [c for c in curves[key] if len(c)])
        info.append((name, labels))
    handles, labels = max(
        (ax.get_legend_handles_labels() for ax in axes.flat), key=lambda h: len(h[1])
    )
    legend = add_legend(axes[0, 1], handles, labels, minimum=1)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, plt, path, info, [legend], title)
