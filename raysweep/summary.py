"""The sweep's summary table: one row per trial, best first (CSV, Parquet, Markdown, terminal)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from raysweep.plan import format_value, swept_params
from raysweep.sweep import TrialOutcome

_FINAL = ("test_acc", "train_acc", "test_loss", "gap")


def _rank_value(out: TrialOutcome, metric: str) -> float | None:
    m = out.metrics
    value = m.get(f"best_{metric}", m.get(metric))
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def best_outcome(outcomes: list[TrialOutcome], metric: str, goal: str) -> TrialOutcome | None:
    """The trial with the best value of `metric` (its best epoch where tracked)."""
    scored = [(v, o) for o in outcomes if (v := _rank_value(o, metric)) is not None]
    if not scored:
        return None
    pick = max if goal == "max" else min
    return pick(scored, key=lambda pair: pair[0])[1]


def summary_rows(outcomes: list[TrialOutcome], metric: str, goal: str = "max") -> list[dict]:
    """One flat row per trial (swept params, final and best metrics, status), best first."""
    columns = swept_params([o.trial for o in outcomes])
    rows = []
    for out in outcomes:
        m = out.metrics
        row: dict[str, Any] = {
            "trial_id": out.trial.trial_id,
            "name": out.trial.name,
            "status": out.status,
        }
        for path in columns:
            value = out.trial.overrides.get(path)
            row[path] = format_value(value) if value is not None else ""
        row["best_test_acc"] = m.get("best_test_acc")
        row["best_epoch"] = m.get("best_epoch")
        for key in _FINAL:
            row[key] = m.get(key)
        row["epochs"] = m.get("epoch")
        row["duration_s"] = round(out.ended - out.started, 1) if out.started and out.ended else None
        row["run_id"] = out.run_id or ""
        row["studies"] = ",".join(out.trial.studies)
        row["_rank"] = _rank_value(out, metric)
        rows.append(row)
    sign = -1 if goal == "max" else 1
    rows.sort(key=lambda r: (r["_rank"] is None, sign * (r["_rank"] or 0.0), r["trial_id"]))
    for row in rows:
        row.pop("_rank")
    return rows


def write_summary(rows: list[dict], out: Path) -> list[Path]:
    """summary.csv, summary.parquet and summary.md in `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if rows:
        csv_path = out / "summary.csv"
        with csv_path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths.append(csv_path)
        pq_path = out / "summary.parquet"
        pq.write_table(pa.Table.from_pylist(rows), pq_path)
        paths.append(pq_path)
    md = out / "summary.md"
    md.write_text(markdown_table(rows))
    paths.append(md)
    return paths


def _cell(value: Any, key: str) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if key.endswith("acc") or key == "gap":
            return f"{100 * value:.2f}%"
        return f"{value:.4g}"
    return str(value)


def table_columns(rows: list[dict]) -> list[str]:
    """The columns worth showing a person (no run ids or study lists)."""
    if not rows:
        return []
    skip = {"run_id", "studies", "name", "train_acc"}
    return [k for k in rows[0] if k not in skip]


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown table, like the seed reports' tables."""
    cols = table_columns(rows)
    if not cols:
        return "(no trials)\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c], c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[dict], limit: int = 30) -> str:
    """The summary as aligned plain text for the terminal."""
    cols = table_columns(rows)
    if not cols:
        return "(no trials)"
    cells = [[_cell(r[c], c) for c in cols] for r in rows[:limit]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows in summary.csv")
    return "\n".join(lines)
