"""Build a sweep's report into a directory: summary tables, summary.md and comparison plots.

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
from raysweep.report.landscape import loss_bands, plot_loss_bands
from raysweep.report.plots import PlotInfo, plot_best_by_axis, plot_curves, plot_gap
from raysweep.report.read import parent_texts, read_sweep
from raysweep.report.tables import (
    SweepData,
    grouped_summary,
    has_repeats,
    summary_table,
    write_tables,
)
from raysweep.report.text import markdown_table

PLOT_FILES = {
    "best_by_axis": "best_by_axis.png",
    "curves": "test_acc_curves.png",
    "gap": "gap.png",
    "loss_landscape": "loss_landscape.png",
}


@dataclass
class Report:
    """What `write_report` made; `files` are the ones logged on the sweep's parent run."""

    table: pd.DataFrame
    grouped: pd.DataFrame | None
    files: list[Path]
    plots: dict[str, PlotInfo]


def write_report(sweep: SweepData, out: Path) -> Report:
    """Every summary file and plot of a sweep into `out`:
    summary.{parquet,csv,md}, summary_by_config.{parquet,csv} (with repeats) and the PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    table = summary_table(sweep)
    files = write_tables(table, out / "summary")
    grouped = None
    md = [f"# {sweep.name}\n", markdown_table(table)]
    if has_repeats(table, sweep.axes):
        grouped = grouped_summary(table, sweep.axes, sweep.metric, sweep.goal)
        files += write_tables(grouped, out / "summary_by_config")
        md += ["\n## Mean ± std over seeds\n", markdown_table(grouped, grouped=True)]
    (out / "summary.md").write_text("\n".join(md))
    files.append(out / "summary.md")
    plots = {
        "best_by_axis": plot_best_by_axis(sweep, table, out / PLOT_FILES["best_by_axis"]),
        "curves": plot_curves(sweep, table, out / PLOT_FILES["curves"]),
        "gap": plot_gap(sweep, table, out / PLOT_FILES["gap"]),
    }
    bands = loss_bands(sweep, table)
    if bands:
        plots["loss_landscape"] = plot_loss_bands(sweep, bands, out / PLOT_FILES["loss_landscape"])
    files += [p.path for p in plots.values()]
    return Report(table=table, grouped=grouped, files=files, plots=plots)


def safe_name(name: str) -> str:
    """An experiment name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def build_report(
    tracking_uri: str | None,
    experiment: str,
    out: Path | None = None,
    parent_id: str | None = None,
) -> tuple[SweepData, Report, Path]:
    """Read a sweep from MLflow and write its summary files and plots to `out` (default
    `./raysweep-report/<experiment>`) with the parent's sweep.yaml and plan.json. Writes
    nothing to MLflow; `Report.files` are what to log on the parent run."""
    sweep = read_sweep(tracking_uri, experiment, parent_id)
    pid = sweep.parent_run_id or ""
    if sweep.trials.empty:
        raise UserError(f"sweep run {pid} of {sweep.name!r} has no trials yet")
    out = out or Path("raysweep-report") / safe_name(sweep.name)
    report = write_report(sweep, out)
    for name, text in parent_texts(tracking_uri, experiment, pid).items():
        (out / name).write_text(text)
    return sweep, report, out
