"""Summary tables as text: aligned columns for the terminal, Markdown for summary.md, HTML for
report.html.

Accuracies and the gap show as percentages, parameter counts with thousands separators, other
metrics with four significant digits, swept values as the run names write them (`1e-3`);
missing cells are `-`. A metric column no trial has a value for (older runs logged no
`num_params`, no best train values) is left out. The terminal shows the narrow view (no
final train values, no best losses); Markdown and HTML show every column. `raysweep report`,
the end of `raysweep run` (`raysweep.summary`), summary.md and report.html all format through
here.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from raysweep.plan import format_value
from raysweep.report.tables import GROUPED_METRICS, METRIC_COLUMNS


def _cell(value: Any, key: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        base = key.removesuffix("_mean").removesuffix("_std")
        if base.endswith("acc") or base == "gap":
            return f"{100 * value:.2f}%"
        if base == "num_params":
            return f"{value:,.0f}"
        if base == "duration_s":
            return f"{value:.1f}"
        if base in METRIC_COLUMNS:
            return f"{value:.4g}"
        return format_value(float(value))  # a swept value: 1e-3, as in the run names
    if key == "num_params" and isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return format_value(value) if isinstance(value, list | dict | bool) else str(value)


HIDDEN = frozenset({"run_id", "studies", "name"})
# Left out of the terminal's narrow view (summary.csv, summary.md and report.html have them).
WIDE_ONLY = frozenset(
    {
        "train_acc",
        "train_loss",
        "train_eval_acc",
        "best_test_loss",
        "best_test_loss_epoch",
        "best_train_loss",
        "best_train_loss_epoch",
    }
)


def _empty(column: pd.Series) -> bool:
    return bool(column.isna().all())


def display_columns(table: pd.DataFrame, wide: bool = False) -> list[str]:
    """The columns worth showing a person: no run ids, study lists or names, no metric column
    without a value; `wide=False` (the terminal) also leaves out `WIDE_ONLY`."""
    skip = HIDDEN if wide else HIDDEN | WIDE_ONLY
    return [
        c
        for c in table.columns
        if c not in skip and not (c in METRIC_COLUMNS and len(table) and _empty(table[c]))
    ]


def _display_grouped(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    metrics = [m for m in GROUPED_METRICS if f"{m}_mean" in frame]
    plain = [c for c in frame.columns if not c.endswith(("_mean", "_std")) and c != "trials"]
    header = plain + [f"{m} (mean ± std)" for m in metrics]
    cells = []
    for row in frame.to_dict("records"):
        line = [_cell(row[c], c) for c in plain]
        for m in metrics:
            mean, std = _cell(row[f"{m}_mean"], m), _cell(row[f"{m}_std"], m)
            line.append(mean if std == "-" else f"{mean} ± {std}")
        cells.append(line)
    return header, cells


def table_cells(
    table: pd.DataFrame, grouped: bool = False, wide: bool = False
) -> tuple[list[str], list[list[str]]]:
    """(header, rows of formatted cells) of a summary or grouped summary."""
    if grouped:
        return _display_grouped(table)
    cols = display_columns(table, wide)
    return cols, [[_cell(r[c], c) for c in cols] for r in table.to_dict("records")]


def markdown_table(table: pd.DataFrame, grouped: bool = False, wide: bool = True) -> str:
    """A summary (or grouped summary) as a Markdown table, like the seed reports' tables;
    every column unless `wide=False`."""
    header, cells = table_cells(table, grouped, wide)
    if not cells:
        return "(no trials)\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def text_table(table: pd.DataFrame, grouped: bool = False, limit: int = 40) -> str:
    """A summary (or grouped summary) as aligned plain text for the terminal."""
    header, cells = table_cells(table, grouped)
    if not cells:
        return "(no trials)"
    shown = cells[:limit]
    widths = [max(len(h), *(len(r[i]) for r in shown)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    if len(cells) > limit:
        lines.append(f"... {len(cells) - limit} more rows in summary.csv")
    return "\n".join(lines)


def html_table(table: pd.DataFrame, grouped: bool = False, wide: bool = True) -> str:
    """A summary (or grouped summary) as an HTML table (escaped); every column unless
    `wide=False` (the terminal's narrow view)."""
    header, cells = table_cells(table, grouped, wide)
    if not cells:
        return "<p>(no trials)</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in cells
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
