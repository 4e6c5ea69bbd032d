"""`raysweep export`: one row per trial run (ids, status, times, typed params, final metrics).

For pandas or DuckDB: params get their types back (`train.optimizer.lr` a float, `train.epochs`
an int; lists and mixed kinds stay MLflow's text), start times are UTC. `duration_s` is the
trial's `train_time_s` (the sum of its epoch times: the one duration of raysweep's tables),
`wall_time_s` the MLflow run's start to end. Read only, apart from the local file
`write_export` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from raysweep.errors import UserError
from raysweep.records import TAG_TRIAL
from raysweep.report.store import (
    child_runs,
    find_parent,
    model_uri_of,
    open_store,
    parse_param,
    run_duration,
    run_status,
    sweep_parents,
)


def _typed_column(texts: list[str | None]) -> list[Any]:
    values = [parse_param(t) for t in texts]
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} or (len(kinds) == 1 and kinds <= {bool, str}):
        return values
    return texts  # lists, or mixed kinds: keep MLflow's text


def export_table(
    tracking_uri: str | None,
    experiment: str,
    parent_id: str | None = None,
    all_sweeps: bool = False,
) -> pd.DataFrame:
    """One row per trial run: ids, status, times (`duration_s` = train_time_s, `wall_time_s` =
    the MLflow run's start to end), every param (typed) and final metric."""
    store = open_store(experiment, tracking_uri)
    parents = sweep_parents(store) if all_sweeps else [find_parent(store, parent_id)]
    runs = [(p.info.run_id, r) for p in parents for r in child_runs(store, p.info.run_id)]
    if not runs:
        raise UserError(f"experiment {store.experiment_name!r} has no trial runs yet")
    params = sorted({k for _, r in runs for k in r.data.params})
    metrics = sorted({k for _, r in runs for k in r.data.metrics})
    rows = []
    for pid, run in runs:
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "sweep_run_id": pid,
                "trial_id": run.data.tags.get(TAG_TRIAL, ""),
                "status": run_status(run),
                "best": run.data.tags.get("raysweep.best") == "true",
                "studies": run.data.tags.get("raysweep.studies", ""),
                "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
                if run.info.start_time
                else pd.NaT,
                "duration_s": run.data.metrics.get("train_time_s"),
                "wall_time_s": run_duration(run),
                "model_uri": model_uri_of(run),
            }
        )
    table = pd.DataFrame(rows)
    for key in params:
        texts = [r.data.params.get(key) for _, r in runs]
        table[key] = pd.Series(_typed_column(texts), dtype=object)
    for key in metrics:
        table[key] = [r.data.metrics.get(key) for _, r in runs]
    return table


def write_export(table: pd.DataFrame, out: Path, fmt: str) -> None:
    """An export table as CSV or Parquet (timestamps stay UTC-aware in Parquet)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        table.to_csv(out, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pyarrow reads tz-aware pandas columns through a deprecated pandas path: convert them to
    # naive UTC for the conversion and mark the Arrow columns UTC again.
    zoned = [c for c in table.columns if isinstance(table[c].dtype, pd.DatetimeTZDtype)]
    naive = table.assign(**{c: table[c].dt.tz_convert(None) for c in zoned})
    arrow = pa.Table.from_pandas(naive, preserve_index=False)
    for column in zoned:
        index = arrow.schema.get_field_index(column)
        utc = arrow.column(column).cast(pa.timestamp("us", tz="UTC"))
        arrow = arrow.set_column(index, column, utc)
    pq.write_table(arrow, out)
