"""report.html: the whole report in one page a person can open, with nothing beside it.

The summary tables and every figure of the report, grouped as the seed reports group them
(an overview, then one section per study), in one self-contained file: figures are embedded as
base64 PNG (`data:` URIs), the style is inline, and there are no scripts, links or any other
file to fetch. The MLflow UI shows it as an artifact of the sweep's parent run.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raysweep.report.plotkit import PlotInfo
from raysweep.report.tables import SweepData
from raysweep.report.text import html_table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
.meta, figcaption, .note { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
nav a { margin-right: 1em; }
"""


@dataclass
class Section:
    """A part of the page: a heading, a few words, its table (a study's trials), its figures
    in order, and a table under a figure (by the figure's file name: a factor's trials)."""

    title: str
    figures: list[PlotInfo]
    note: str = ""
    table: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing to show: no figure and no table rows (a study whose trials all failed
        still shows its table)."""
        return not self.figures and (self.table is None or self.table.empty)

    @property
    def anchor(self) -> str:
        """The section's id in the page."""
        return "s-" + "".join(c if c.isalnum() else "-" for c in self.title.lower())


def embed_png(path: Path) -> str:
    """A PNG file as a `data:` URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(info: PlotInfo) -> str:
    alt = html.escape(info.title or info.path.stem, quote=True)
    caption = html.escape(info.path.name)
    if info.title:
        caption += " — " + html.escape(info.title)
    return (
        f'<figure><img src="{embed_png(info.path)}" alt="{alt}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def render_page(
    sweep: SweepData,
    table: pd.DataFrame,
    grouped: pd.DataFrame | None,
    sections: Sequence[Section],
    files: Sequence[Path],
) -> str:
    """The report page as HTML text: header, tables, then each section's figures."""
    e = html.escape
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(sweep.name)}: raysweep report</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(sweep.name)}</h1>",
        f'<p class="meta">sweep run {e(sweep.parent_run_id or "-")}: {len(table)} trials '
        f"({e(status)}); ranked by {e(sweep.metric)} ({e(sweep.goal)}).</p>",
        "<nav>"
        + '<a href="#s-summary">summary</a>'
        + "".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections if not s.empty)
        + "</nav>",
        '<h2 id="s-summary">Summary</h2>',
        '<p class="note">One row per trial, best first. <code>duration_s</code> is the '
        "trial's <code>train_time_s</code>: the sum of its epoch times (training and "
        "evaluation), not the MLflow run's start-to-end time. <code>gap</code> is train minus "
        "test accuracy at the last epoch (the clean train pass where logged).</p>",
        f'<div class="scroll">{html_table(table)}</div>',
    ]
    if grouped is not None:
        parts += [
            "<h3>Mean ± std over seeds</h3>",
            f'<div class="scroll">{html_table(grouped, grouped=True)}</div>',
        ]
    for section in sections:
        if section.empty:
            continue
        parts.append(f'<h2 id="{section.anchor}">{e(section.title)}</h2>')
        if section.note:
            parts.append(f'<p class="note">{e(section.note)}</p>')
        if section.table is not None:
            parts.append(f'<div class="scroll">{html_table(section.table, wide=False)}</div>')
        for info in section.figures:
            parts.append(_figure(info))
            if info.path.name in section.tables:
                shown = html_table(section.tables[info.path.name], wide=False)
                parts.append(f'<div class="scroll">{shown}</div>')
    listed = ", ".join(e(p.name) for p in files)
    parts += [f'<p class="meta">Files of this report: {listed}.</p>', "</body></html>"]
    return "\n".join(parts) + "\n"


def write_page(
    path: Path,
    sweep: SweepData,
    table: pd.DataFrame,
    grouped: pd.DataFrame | None,
    sections: Sequence[Section],
    files: Sequence[Path],
) -> Path:
    """Write report.html to `path`; returns it."""
    path.write_text(render_page(sweep, table, grouped, sections, files), encoding="utf-8")
    return path
