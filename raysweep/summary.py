"""The end-of-run summary from the driver's own record of its trials: one row per trial, best
first, for the terminal (MLflow's copy, with plots, is built by raysweep.report.build.build_report).
"""

from __future__ import annotations

from typing import Any

from raysweep.plan import format_value, swept_params
from raysweep.ranking import best, ranked
from raysweep.records import TrialOutcome

_FINAL = ("test_acc", "train_acc", "test_loss", "gap")


def _describe(out: TrialOutcome) -> tuple[dict[str, Any], str, str]:
    return out.metrics, out.status, out.trial.trial_id


def best_outcome(outcomes: list[TrialOutcome], metric: str, goal: str) -> TrialOutcome | None:
    """The best trial by raysweep.ranking's rule (never a failed, diverged or killed one)."""
    return best(outcomes, metric, goal, _describe)


def summary_rows(outcomes: list[TrialOutcome], metric: str, goal: str = "max") -> list[dict]:
    """One flat row per trial (swept params, final and best metrics, status), best first."""
    columns = swept_params([o.trial for o in outcomes])
    rows = []
    for out in ranked(outcomes, metric, goal, _describe):
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
        # One duration everywhere: the sum of its epochs' times (`raysweep report` shows it too).
        duration = m.get("train_time_s")
        row["duration_s"] = round(duration, 1) if isinstance(duration, int | float) else None
        row["run_id"] = out.run_id or ""
        row["studies"] = ",".join(out.trial.studies)
        rows.append(row)
    return rows


def summary_text(rows: list[dict], limit: int = 40) -> str:
    """The rows as the terminal table (the same formatting as `raysweep report`)."""
    import pandas as pd

    from raysweep.report.text import text_table

    return text_table(pd.DataFrame(rows), limit=limit)
