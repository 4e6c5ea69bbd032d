"""Which figures a sweep's report draws, and under which file names and page sections.

Overview (the whole sweep): best value per swept value, test accuracy per epoch, train/test
gap, accuracy against model size and training time, the loss band over learning rates.
Per study (`raysweep.report.studies`): its training curves (one line per configuration),
one curves figure per factor when it has several, and its per-class accuracy heatmap. A
figure without data (no history, no per-class file, no lr axis) is not drawn.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raysweep.report.class_plots import plot_per_class
from raysweep.report.cost_plots import plot_accuracy_vs_cost
from raysweep.report.forked import CAN_FORK, Forked
from raysweep.report.landscape import loss_bands, plot_loss_bands
from raysweep.report.page import Section
from raysweep.report.plotkit import PlotInfo
from raysweep.report.plots import plot_best_by_axis, plot_curves, plot_gap, trial_label
from raysweep.report.studies import factor_lines, find_studies, study_lines
from raysweep.report.study_plots import plot_lines
from raysweep.report.tables import SEED_AXIS, SweepData, value_key

PLOT_FILES = {
    "best_by_axis": "best_by_axis.png",
    "curves": "test_acc_curves.png",
    "gap": "gap.png",
    "cost": "accuracy_vs_cost.png",
    "loss_landscape": "loss_landscape.png",
}


FORK_WAIT_S = 60.0  # the least a forked overview is waited for before it is drawn here

# Summary columns that are neither swept parameters nor metrics.
SWEPT_META = ("run_id", "studies")


@dataclass
class Figures:
    """The figures drawn: by key (`PLOT_FILES`' keys; `curves:<study>`,
    `curves:<study>:<factor>`, `per_class:<study>`), as page sections, and the tables of the
    studies and their factors (heading, rows) for summary.md."""

    plots: dict[str, PlotInfo] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


def file_part(name: str) -> str:
    """A study or parameter name as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def draw_overview(
    sweep: SweepData, table: pd.DataFrame, out: Path, band_cut: str = "none"
) -> dict[str, PlotInfo]:
    """The whole-sweep figures, by key."""
    plots: dict[str, PlotInfo | None] = {
        "best_by_axis": plot_best_by_axis(sweep, table, out / PLOT_FILES["best_by_axis"]),
        "curves": plot_curves(sweep, table, out / PLOT_FILES["curves"]),
        "gap": plot_gap(sweep, table, out / PLOT_FILES["gap"]),
        "cost": plot_accuracy_vs_cost(sweep, table, out / PLOT_FILES["cost"]),
    }
    bands = loss_bands(sweep, table, cut=band_cut)
    if bands:
        path = out / PLOT_FILES["loss_landscape"]
        plots["loss_landscape"] = plot_loss_bands(sweep, bands, path)
    return {k: v for k, v in plots.items() if v is not None}


def trials_table(
    table: pd.DataFrame, trials: list[str], axes: list[str], swept: list[str]
) -> pd.DataFrame:
    """The summary rows of `trials` (summary order) showing only `axes` of the `swept`
    parameters: a study's table, or the table beside one factor's figure."""
    front = ["trial_id", "name", "status", *axes]
    hidden = set(swept) | set(SWEPT_META)
    columns = front + [c for c in table.columns if c not in hidden and c not in front]
    return table[table["trial_id"].isin(trials)][columns].reset_index(drop=True)


def draw_studies(sweep: SweepData, table: pd.DataFrame, out: Path) -> Figures:
    """Per study: its table and curves of all its configurations, per factor (when it has
    several) a table and curves, and its per-class accuracy."""
    figures = Figures()
    rows = {r["trial_id"]: r for r in table.to_dict("records")}
    labels = {tid: trial_label(r) for tid, r in rows.items()}
    used: set[str] = set()
    for study in find_studies(sweep, table):
        members = [rows[t] for t in study.trials]
        part = _unique(file_part(study.name), used)
        section = Section(f"Study {study.name}", [], _note(study.trials, study.factors))
        shown_axes = [*study.factors, *([SEED_AXIS] if SEED_AXIS in sweep.axes else [])]
        section.table = trials_table(table, study.trials, shown_axes, sweep.axes)
        figures.tables.append((section.title, section.table))
        varies = f" over {', '.join(study.factors)}" if study.factors else ""
        title = f"{sweep.name}: study {study.name}{varies}"
        lines = study_lines(study, members)
        info = plot_lines(sweep, lines, title, out / f"curves__{part}.png")
        drawn = [(f"curves:{study.name}", info)]
        for factor in study.factors if len(study.factors) > 1 else []:
            path = out / f"curves__{part}__{file_part(factor)}.png"
            lines = factor_lines(study, members, factor)
            title = f"{sweep.name}: study {study.name}, {factor}"
            info = plot_lines(sweep, lines, title, path, True)
            drawn.append((f"curves:{study.name}:{factor}", info))
            if info is not None:
                trials = [t for line in lines for t in line.trials]
                picked = [rows[t] for t in trials]
                others = [a for a in shown_axes if a != factor and _varies(picked, a)]
                shown = trials_table(table, trials, [factor, *others], sweep.axes)
                section.tables[path.name] = shown
                figures.tables.append((f"{section.title}, {factor}", shown))
        path = out / f"per_class__{part}.png"
        title = f"{sweep.name}: study {study.name}, test accuracy per class"
        heat = plot_per_class(sweep.per_class, study.trials, labels, title, path)
        drawn.append((f"per_class:{study.name}", heat))
        kept = [(k, v) for k, v in drawn if v is not None]
        figures.plots.update(kept)
        section.figures = [v for _, v in kept]
        figures.sections.append(section)
    return figures


def _unique(part: str, used: set[str]) -> str:
    """`part`, or `part_2`, `part_3`, ... when two studies' names make the same file name."""
    name, n = part, 1
    while name in used:
        n += 1
        name = f"{part}_{n}"
    used.add(name)
    return name


def _varies(rows: list[dict], axis: str) -> bool:
    return len({value_key(r.get(axis)) for r in rows}) > 1


def _note(trials: list[str], factors: list[str]) -> str:
    return f"{len(trials)} trials" + (f"; factors: {', '.join(factors)}" if factors else "")


def draw_figures(
    sweep: SweepData, table: pd.DataFrame, out: Path, band_cut: str = "none", fork: bool = False
) -> Figures:
    """Every figure of the report into `out`, by key and as page sections (overview first).

    With `fork`, the overview is drawn in a forked process while this one draws the studies
    (`raysweep.report.forked`; the same files either way)."""
    forked = Forked(draw_overview, sweep, table, out, band_cut) if fork and CAN_FORK else None
    started = time.monotonic()
    studies = draw_studies(sweep, table, out)
    overview = None
    if forked is not None:  # it has had as long as the studies took, and gets 4x more
        overview = forked.result(max(FORK_WAIT_S, 4 * (time.monotonic() - started)))
    if overview is None:
        overview = draw_overview(sweep, table, out, band_cut)
    note = "The whole sweep: every trial."
    return Figures(
        plots={**overview, **studies.plots},
        sections=[Section("Overview", list(overview.values()), note), *studies.sections],
        tables=studies.tables,
    )
