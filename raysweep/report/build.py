"""Build a sweep's report into a directory: summary tables, summary.md, the figures
(`raysweep.report.figures`) and report.html, the page that holds them all.

`write_report` makes the files from a `SweepData` (no MLflow); `build_report` reads the sweep
from MLflow (`raysweep.report.read`) and writes its report, plus the parent's sweep.yaml and
plan.json, into a folder. Neither writes to MLflow: logging the files on the parent run is
`raysweep.report.publish.log_report`, or the sweep driver's own writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raysweep.errors import UserError
from raysweep.report.figures import draw_figures
from raysweep.report.page import Section, write_page
from raysweep.report.plotkit import PlotInfo
from raysweep.report.read import parent_texts, read_sweep
from raysweep.report.tables import (
    SweepData,
    grouped_summary,
    has_repeats,
    summary_table,
    write_tables,
)
from raysweep.report.text import markdown_table

PAGE_FILE = "report.html"


@dataclass
class Report:
    """What `write_report` made; `files` are the ones logged on the sweep's parent run (the
    page last); `plots` the figures by key, `sections` as the page groups them."""

    table: pd.DataFrame
    grouped: pd.DataFrame | None
    files: list[Path]
    plots: dict[str, PlotInfo]
    sections: list[Section]
    page: Path


def write_report(sweep: SweepData, out: Path, band_cut: str = "none", fork: bool = False) -> Report:
    """Every summary file and figure of a sweep into `out`: summary.{parquet,csv,md},
    summary_by_config.{parquet,csv} (with repeats), the PNGs and report.html. `band_cut`:
    where the loss bands end (`raysweep.report.landscape.BAND_CUTS`); `fork`: part of the
    figures drawn in a forked process (`raysweep.report.figures.draw_figures`)."""
    out.mkdir(parents=True, exist_ok=True)
    table = summary_table(sweep)
    files = write_tables(table, out / "summary")
    grouped = None
    md = [f"# {sweep.name}\n", markdown_table(table)]
    if has_repeats(table, sweep.axes):
        grouped = grouped_summary(table, sweep.axes, sweep.metric, sweep.goal)
        files += write_tables(grouped, out / "summary_by_config")
        md += ["\n## Mean ± std over seeds\n", markdown_table(grouped, grouped=True)]
    figures = draw_figures(sweep, table, out, band_cut, fork)
    if len(figures.tables) > 1:  # a table per study and per factor, as the reports give them
        for heading, rows in figures.tables:
            md += [f"\n## {heading}\n", markdown_table(rows, wide=False)]
    (out / "summary.md").write_text("\n".join(md))
    files.append(out / "summary.md")
    files += [p.path for p in figures.plots.values()]
    page = write_page(
        out / PAGE_FILE, sweep, table, grouped, figures.sections, [*files, out / PAGE_FILE]
    )
    files.append(page)
    return Report(table, grouped, files, figures.plots, figures.sections, page)


def safe_name(name: str) -> str:
    """An experiment name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def build_report(
    tracking_uri: str | None,
    experiment: str,
    out: Path | None = None,
    parent_id: str | None = None,
    band_cut: str = "none",
    fork: bool = False,
) -> tuple[SweepData, Report, Path]:
    """Read a sweep from MLflow and write its summary files, figures and report.html to `out`
    (default `./raysweep-report/<experiment>`) with the parent's sweep.yaml and plan.json.
    Writes nothing to MLflow; `Report.files` are what to log on the parent run."""
    sweep = read_sweep(tracking_uri, experiment, parent_id)
    pid = sweep.parent_run_id or ""
    if sweep.trials.empty:
        raise UserError(f"sweep run {pid} of {sweep.name!r} has no trials yet")
    out = out or Path("raysweep-report") / safe_name(sweep.name)
    report = write_report(sweep, out, band_cut, fork)
    for name, text in parent_texts(tracking_uri, experiment, pid).items():
        (out / name).write_text(text)
    return sweep, report, out
