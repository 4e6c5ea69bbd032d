"""`raysweep best`: the best trial of a sweep, with its params, metrics and model URI.

Ranked as the summary table ranks (`raysweep.ranking`'s rule through `tables.best_row`), so
`best`, `report` and the parent run's best tag agree. Read only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from raysweep.errors import UserError
from raysweep.report.read import FINAL_METRICS, read_sweep
from raysweep.report.store import model_uri_of, open_store
from raysweep.report.tables import best_row, default_goal, summary_table


@dataclass
class BestRun:
    """The best trial of a sweep, as `raysweep best` reports it."""

    run_id: str
    trial_id: str
    name: str
    status: str
    metric: str
    goal: str
    value: float
    swept: dict[str, Any]
    params: dict[str, str]
    metrics: dict[str, float]
    model_uri: str | None
    parent_run_id: str


def best_run(
    tracking_uri: str | None,
    experiment: str,
    metric: str = "test_acc",
    goal: str | None = None,
    parent_id: str | None = None,
) -> BestRun:
    """The best trial of the newest sweep (or of `parent_id`) by `metric` (its best epoch's
    value where tracked), ranked as the summary ranks: failed and diverged trials never win."""
    sweep = read_sweep(tracking_uri, experiment, parent_id, with_steps=False, with_per_class=False)
    goal = goal or (sweep.goal if metric == sweep.metric else default_goal(metric))
    table = summary_table(replace(sweep, metric=metric, goal=goal))
    row = best_row(table, metric, goal)
    if row is None:
        raise UserError(
            f"no trial of sweep {sweep.parent_run_id} in {experiment!r} has a value of "
            f"{metric!r} (known: {', '.join(FINAL_METRICS)})"
        )
    store = open_store(experiment, tracking_uri)
    run = store.client.get_run(row["run_id"])
    value = row.get(f"best_{metric}")
    value = value if value is not None and not pd.isna(value) else row.get(metric)
    return BestRun(
        run_id=run.info.run_id,
        trial_id=row["trial_id"],
        name=run.info.run_name,
        status=row["status"],
        metric=metric,
        goal=goal,
        value=float(value),
        swept={a: row[a] for a in sweep.axes},
        params=dict(sorted(run.data.params.items())),
        metrics=dict(sorted(run.data.metrics.items())),
        model_uri=model_uri_of(run),
        parent_run_id=sweep.parent_run_id or "",
    )
