"""`raysweep run --resume`: find the sweep's last parent run and what its trials had done.

MLflow is the record: the newest parent run of the experiment names the Tune experiment
directory (tag `raysweep.experiment_dir`) and storage (param `storage`); each child run carries
its trial id and the fingerprint of its config, so a sweep file that changed since is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysweep.errors import UserError
from raysweep.plan import Trial
from raysweep.records import TAG_STATUS, TAG_TRIAL, TrialOutcome, TrialStatus
from raysweep.tracking import MlflowWriter


@dataclass
class Previous:
    """The sweep run to continue."""

    parent_id: str
    experiment_dir: str
    storage: str


def find_previous(writer: MlflowWriter, name: str) -> Previous:
    """The newest parent run of sweep `name`; UserError if there is none."""
    runs = writer.client.search_runs(
        [writer.experiment_id],
        filter_string="tags.`raysweep.role` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise UserError(
            f"--resume: no earlier run of sweep '{name}' in {writer.uri}; run without --resume"
        )
    run = runs[0]
    return Previous(
        parent_id=run.info.run_id,
        experiment_dir=run.data.tags["raysweep.experiment_dir"],
        storage=run.data.params.get("storage", ""),
    )


def restore_outcomes(
    writer: MlflowWriter, parent_id: str, trials: list[Trial]
) -> dict[str, TrialOutcome]:
    """Outcomes as MLflow recorded them: ended trials keep their result, the rest continue."""
    outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
    children = writer.client.search_runs(
        [writer.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
        max_results=10_000,
    )
    for child in children:
        trial_id = child.data.tags.get(TAG_TRIAL, "")
        out = outcomes.get(trial_id)
        if out is None or child.data.tags.get("raysweep.fingerprint") != out.trial.fingerprint:
            raise UserError(
                f"--resume: trial {trial_id} of the earlier run does not match the sweep file "
                "(it changed since); run without --resume to start a new sweep"
            )
        out.run_id = child.info.run_id
        out.restarts = int(child.data.tags.get("raysweep.restarts", 0))  # counts on across runs
        history = writer.client.get_metric_history(out.run_id, "test_acc")
        out.last_epoch = max((m.step for m in history), default=0)
        status = child.data.tags.get(TAG_STATUS, "")
        if status in {s.value for s in TrialStatus} and TrialStatus(status).ended:
            out.status, out.recorded = TrialStatus(status), True
            if child.info.status == "RUNNING":  # the driver died between the tag and the end
                writer.submit(writer.end, out.run_id, out.status.mlflow_status)
            out.metrics = {**child.data.metrics, "epoch": out.last_epoch, "is_last_epoch": 1}
            out.started = child.info.start_time / 1000
            out.ended = (child.info.end_time or child.info.start_time) / 1000
    return outcomes
