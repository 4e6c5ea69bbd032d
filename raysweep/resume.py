"""`raysweep run --resume`: find the sweep's last parent run and what its trials had done.

MLflow is the record: the newest parent run of the experiment names the Tune experiment
directory (tag `raysweep.experiment_dir`) and storage (param `storage`); each child run carries
its trial id and the fingerprint of its config, so a sweep file that changed since is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from raysweep.config import SweepSpec
from raysweep.errors import UserError
from raysweep.plan import Trial
from raysweep.records import (
    TAG_ERROR,
    TAG_EXPERIMENT_DIR,
    TAG_FINGERPRINT,
    TAG_OVERRIDES,
    TAG_RESTARTS,
    TAG_ROLE,
    TAG_SELECTED_STUDIES,
    TAG_STATUS,
    TAG_STORAGE,
    TAG_TRIAL,
    TrialOutcome,
    TrialStatus,
)
from raysweep.tracking import MlflowWriter


@dataclass
class Previous:
    """The sweep run to continue."""

    parent_id: str
    experiment_dir: str
    storage: str


def find_previous(writer: MlflowWriter, name: str, studies: tuple[str, ...] = ()) -> Previous:
    """The newest parent run of sweep `name` that ran the same studies (`--study`; empty:
    every study); UserError if there is none."""
    run = newest_parent(writer, name, studies)
    return Previous(
        parent_id=run.info.run_id,
        experiment_dir=run.data.tags[TAG_EXPERIMENT_DIR],
        storage=run.data.tags.get(TAG_STORAGE, ""),
    )


def newest_parent(writer: MlflowWriter, name: str, studies: tuple[str, ...]) -> Any:
    """The newest parent run of sweep `name` made with the same `--study` selection (`studies`
    in file order; empty: every study). A run of other studies is another run: `--resume`
    never continues it (its trials are not this run's). UserError, saying what the newest
    parent ran, when there is none."""
    wanted = ",".join(studies)
    newest = None
    token = None
    while True:
        page = writer.client.search_runs(
            [writer.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=200,
            page_token=token,
        )
        for run in page:
            newest = newest or run
            if run.data.tags.get(TAG_SELECTED_STUDIES, "") == wanted:
                return run
        token = page.token
        if not token:
            break
    if newest is None:
        raise UserError(
            f"--resume: no earlier run of sweep '{name}' in {writer.uri}; run without --resume"
        )
    ran = newest.data.tags.get(TAG_SELECTED_STUDIES, "")
    asked = f"with --study {wanted}" if wanted else "of every study (without --study)"
    raise UserError(
        f"--resume: no earlier run of sweep '{name}' {asked} in {writer.uri} (its newest run "
        f"{f'had --study {ran}' if ran else 'ran every study'}); resume with that run's "
        "--study, or run without --resume"
    )


def restore_outcomes(
    writer: MlflowWriter, parent_id: str, trials: list[Trial], metric: str = "test_acc"
) -> dict[str, TrialOutcome]:
    """Outcomes as MLflow recorded them: ended trials keep their result, the rest continue;
    each with the sweep's `metric` per epoch (`TrialOutcome.metric_history`)."""
    outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
    for child in _children(writer, parent_id):
        trial_id = child.data.tags.get(TAG_TRIAL, "")
        out = outcomes.get(trial_id)
        if out is None or child.data.tags.get(TAG_FINGERPRINT) != out.trial.fingerprint:
            raise _changed(trial_id)
        _restore_child(writer, child, out, metric)
    return outcomes


def restore_searched(
    writer: MlflowWriter, parent_id: str, spec: SweepSpec
) -> tuple[dict[str, TrialOutcome], dict[str, dict[str, Any]]]:
    """An adaptive sweep's outcomes, and the point each recorded trial id was given.

    Its trials exist only in MLflow (each run's overrides tag); the points are handed out
    again under the same ids where Tune's saved state is older than MLflow's record."""
    from raysweep.plan import point_trial
    from raysweep.searchspace import tpe_study

    study = tpe_study(spec)
    index = spec.sweep.studies.index(study)
    outcomes: dict[str, TrialOutcome] = {}
    points: dict[str, dict[str, Any]] = {}
    for child in _children(writer, parent_id):
        trial_id = child.data.tags.get(TAG_TRIAL, "")
        overrides = json.loads(child.data.tags.get(TAG_OVERRIDES, "{}"))
        point = {path: overrides[path] for path in study.axes if path in overrides}
        try:
            trial = point_trial(spec, index, trial_id, point, spec.name)
        except UserError:
            raise _changed(trial_id) from None
        if len(point) != len(study.axes) or (
            child.data.tags.get(TAG_FINGERPRINT) != trial.fingerprint
        ):
            raise _changed(trial_id)
        outcomes[trial_id] = out = TrialOutcome(trial)
        points[trial_id] = point
        _restore_child(writer, child, out, spec.sweep.metric)
    return outcomes, points


def _children(writer: MlflowWriter, parent_id: str) -> list[Any]:
    return writer.client.search_runs(
        [writer.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
        max_results=10_000,
    )


def _changed(trial_id: str) -> UserError:
    return UserError(
        f"--resume: trial {trial_id} of the earlier run does not match the sweep file "
        "(it changed since); run without --resume to start a new sweep"
    )


def _restore_child(writer: MlflowWriter, child: Any, out: TrialOutcome, metric: str) -> None:
    """What MLflow says one trial did: its run, restarts and epochs (and the sweep's `metric`
    at each), and whether it ended."""
    out.run_id = child.info.run_id
    out.restarts = int(child.data.tags.get(TAG_RESTARTS, 0))  # counts on across runs
    history = writer.client.get_metric_history(out.run_id, "test_acc")
    out.last_epoch = max((m.step for m in history), default=0)
    if metric != "test_acc":
        history = writer.client.get_metric_history(out.run_id, metric)
    out.metric_history = {m.step: m.value for m in history}
    status = child.data.tags.get(TAG_STATUS, "")
    if status in {s.value for s in TrialStatus} and TrialStatus(status).ended:
        out.status, out.recorded = TrialStatus(status), True
        out.error = child.data.tags.get(TAG_ERROR)  # a failed trial's, in a few words
        if child.info.status == "RUNNING":  # the driver died between the tag and the end
            writer.submit(writer.end, out.run_id, out.status.mlflow_status)
        out.metrics = {**child.data.metrics, "epoch": out.last_epoch, "is_last_epoch": 1}
        out.started = child.info.start_time / 1000
        out.ended = (child.info.end_time or child.info.start_time) / 1000
