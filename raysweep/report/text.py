"""Summary tables as text: aligned columns for the terminal, Markdown for summary.md.

Accuracies and the gap show as percentages, other metrics with four significant digits, swept
values as the run names write them (`1e-3`); missing cells are `-`. `raysweep report`, the end
of `raysweep run` (`raysweep.summary`) and summary.md all format through here.
"""

from __future__ import annotations

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
        if base in METRIC_COLUMNS:
            return f"{value:.4g}"
        return format_value(float(value))  # a swept value: 1e-3, as in the run names
    return format_value(value) if isinstance(value, list | dict | bool) else str(value)


def display_columns(table: pd.DataFrame) -> list[str]:
    """The columns worth showing a person (no run ids, study lists or names)."""
    skip = {"run_id", "studies", "name", "train_acc", "train_loss"}
    return [c for c in table.columns if c not in skip]


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


def _rows(table: pd.DataFrame, grouped: bool) -> tuple[list[str], list[list[str]]]:
    if grouped:
        return _display_grouped(table)
    cols = display_columns(table)
    return cols, [[_cell(r[c], c) for c in cols] for r in table.to_dict("records")]


def markdown_table(table: pd.DataFrame, grouped: bool = False) -> str:
    """A summary (or grouped summary) as a Markdown table, like the seed reports' tables."""
    header, cells = _rows(table, grouped)
    if not cells:
        return "(no trials)\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def text_table(table: pd.DataFrame, grouped: bool = False, limit: int = 40) -> str:
    """A summary (or grouped summary) as aligned plain text for the terminal."""
    header, cells = _rows(table, grouped)
    if not cells:
        return "(no trials)"
    shown = cells[:limit]
    widths = [max(len(h), *(len(r[i]) for r in shown)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    if len(cells) > limit:
        lines.append(f"... {len(cells) - limit} more rows in summary.csv")
    return "\n".join(lines)
