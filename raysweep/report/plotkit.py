"""What every report figure shares: the Agg backend, legends that fit, names, and grouping.

Each plotting function of the report returns a `PlotInfo` naming the series it drew, panel by
panel, and the legend entries it showed, so tests can check what a figure holds without reading
pixels. Legends go outside the axes (they never cover data), in as many columns as they need,
and show at most `MAX_LEGEND` entries, the rest summed up as one "+k more" entry: a 48-trial
sweep stays readable. Figures use matplotlib's constrained layout, which makes room for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from raysweep.ranking import finite
from raysweep.report.tables import LR_AXIS, SEED_AXIS, SweepData, value_key

MAX_LEGEND = 24  # legend entries shown; more become "+k more"
LEGEND_ROWS = 16  # entries per legend column before a new column starts
LABEL_CHARS = 48  # legend labels and tick labels are cut to this many characters


@dataclass
class PlotInfo:
    """A written plot: its file; per panel, its title and the labels of the series drawn (the
    rows of a heatmap); the entries of each legend shown (a "+k more" entry where entries were
    left out); its title; and a heatmap's columns (classes)."""

    path: Path
    panels: list[tuple[str, list[str]]]
    legends: list[list[str]] = field(default_factory=list)
    title: str = ""
    columns: list[str] = field(default_factory=list)

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


def figure(width: float, height: float, **kwargs: Any) -> tuple[Any, Any, Any]:
    """(pyplot, figure, axes) of a new constrained-layout figure (`plt.subplots` kwargs)."""
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(width, height), layout="constrained", **kwargs)
    return plt, fig, axes


def cut(text: str, limit: int = LABEL_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def sort_keys(keys: Iterable[str], raw: dict[str, Any]) -> list[str]:
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


def palette(count: int) -> list[Any]:
    """`count` distinct colors: tab10, tab20, then evenly spaced over a perceptual map."""
    plt = pyplot()
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    if count <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(count)]
    cmap = plt.get_cmap("turbo")
    return [cmap(0.05 + 0.9 * i / (count - 1)) for i in range(count)]


def fit_legend(
    handles: Sequence[Any], labels: Sequence[str], limit: int = MAX_LEGEND
) -> tuple[list[Any], list[str]]:
    """At most `limit` entries: the first `limit - 1` and one "+k more" (no marker)."""
    handles, labels = list(handles), [cut(str(t)) for t in labels]
    if len(labels) <= limit:
        return handles, labels
    from matplotlib.lines import Line2D

    keep = limit - 1
    more = Line2D([], [], linestyle="none", marker="none")
    return [*handles[:keep], more], [*labels[:keep], f"+{len(labels) - keep} more"]


def legend_width(count: int, chars: int = 30) -> float:
    """Inches a legend of `count` entries right of the axes takes (to widen a figure by)."""
    shown = min(count, MAX_LEGEND)
    if shown < 2:
        return 0.0
    return math.ceil(shown / LEGEND_ROWS) * (0.35 + 0.055 * min(chars, LABEL_CHARS))


def add_legend(
    ax: Any,
    handles: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    minimum: int = 2,
) -> list[str]:
    """A legend right of `ax` (the top-right panel, for a legend shared by a figure's panels),
    when it has at least `minimum` entries; returns the entries shown."""
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    if len(labels) < minimum:
        return []
    handles, labels = fit_legend(handles, labels)
    ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=7,
        frameon=False,
        ncol=math.ceil(len(labels) / LEGEND_ROWS),
        title=title,
        title_fontsize=8,
    )
    return labels


def integer_ticks(ax: Any) -> None:
    """Whole numbers only on the x axis (epochs)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def labels_drawn(ax: Any) -> list[str]:
    """The labels of the series drawn on `ax`."""
    return list(ax.get_legend_handles_labels()[1])


def save_figure(
    fig: Any,
    plt: Any,
    path: Path,
    panels: list[tuple[str, list[str]]],
    legends: list[list[str]] | None = None,
    title: str = "",
    columns: list[str] | None = None,
) -> PlotInfo:
    """Write `fig` to `path` (90 dpi), close it, and describe what it shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)  # constrained layout already fits legends and labels
    plt.close(fig)
    return PlotInfo(path, panels, legends or [], title, columns or [])
