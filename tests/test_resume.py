"""`--resume`'s bookkeeping (`raysweep.resume`) against a temporary SQLite MLflow store: which
parent run a resumed sweep continues, what each trial had done by its MLflow run, and how the
recorder goes on from there (the same runs, no epoch twice). No Ray session, no torch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from raysweep.errors import UserError
from raysweep.plan import Trial
from raysweep.recorder import SweepRecorder
from raysweep.records import (
    FINAL_KEYS,
    TAG_ERROR,
    TAG_EXPERIMENT_DIR,
    TAG_STATUS,
    TAG_STORAGE,
    TAG_TRIAL,
    TrialOutcome,
    TrialStatus,
)
from raysweep.resume import Previous, find_previous, restore_outcomes
from tests.fakes import (
    NAME,
    NUM_PARAMS,
    Store,
    events,
    make_console,
    make_trials,
    open_store,
    result,
    tune_trial,
)


@pytest.fixture
def store(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    with open_store(tmp_path, tmp_path_factory, monkeypatch) as s:
        yield s


@pytest.fixture
def trials() -> list[Trial]:
    return make_trials()


def earlier_run(
    store: Store,
    parent_id: str,
    trial: Trial,
    accuracies: list[float],
    status: str = "running",
    mlflow_status: str = "RUNNING",
    **tags: str,
) -> str:
    """A trial's child run as an earlier driver left it: its epochs, its end (when `status` is
    an end) and `status` tag, its MLflow status (RUNNING: not ended). Returns its run id."""
    writer = store.writer
    run_tags = {
        TAG_TRIAL: trial.trial_id,
        "raysweep.studies": ",".join(trial.studies),
        "raysweep.fingerprint": trial.fingerprint,
        TAG_STATUS: "running",
        **tags,
    }
    run_id = writer.create_child(
        parent_id, trial.name, run_tags, trial.config.model_dump(mode="json")
    )
    last: dict[str, Any] = {}
    for epoch, acc in enumerate(accuracies, start=1):
        last = result(epoch, acc, last=epoch == len(accuracies))
        writer.log_epoch(run_id, last)
    if TrialStatus(status).ended:
        writer.log_final(run_id, {k: last[k] for k in FINAL_KEYS if k in last}, {})
    writer.log_final(run_id, {}, {TAG_STATUS: status})
    if mlflow_status != "RUNNING":
        writer.end(run_id, mlflow_status)
    return run_id


# ---- find_previous ----------------------------------------------------------------------------


def test_find_previous_without_an_earlier_run_is_a_user_error(store: Store) -> None:
    # A run that is not a sweep's parent (no raysweep.role tag) does not count.
    store.client.create_run(store.writer.experiment_id, run_name="stray")
    with pytest.raises(UserError) as caught:
        find_previous(store.writer, NAME)
    assert str(caught.value) == (
        f"--resume: no earlier run of sweep '{NAME}' in {store.uri}; run without --resume"
    )
    assert caught.value.exit_code == 2


def test_find_previous_takes_the_newest_parent_run(store: Store) -> None:
    client, experiment = store.client, store.writer.experiment_id

    def parent(start_ms: int, directory: str, storage: str | None) -> str:
        tags = {"raysweep.role": "sweep", TAG_EXPERIMENT_DIR: directory}
        if storage is not None:
            tags[TAG_STORAGE] = storage
        run = client.create_run(experiment, start_time=start_ms, tags=tags, run_name="p")
        return run.info.run_id

    older = parent(1_000_000, "unit-older", "/storage/a")
    newest = parent(3_000_000, "unit-newest", "s3://bucket/runs")
    parent(2_000_000, "unit-middle", "/storage/b")
    # A newer run that is a trial's, not a sweep's.
    client.create_run(experiment, start_time=4_000_000, tags={"mlflow.parentRunId": older})
    assert find_previous(store.writer, NAME) == Previous(newest, "unit-newest", "s3://bucket/runs")
    no_storage = parent(5_000_000, "unit-bare", None)
    assert find_previous(store.writer, NAME) == Previous(no_storage, "unit-bare", "")


# ---- restore_outcomes -------------------------------------------------------------------------


def test_restore_outcomes_from_the_earlier_runs(store: Store, trials: list[Trial]) -> None:
    parent_id = store.start_parent()
    t0, t1, t2, t3 = trials
    finished = earlier_run(store, parent_id, t0, [0.5, 0.6, 0.7], "finished", "FINISHED")
    # Killed between the status tag and the run's end: tagged failed, still RUNNING.
    half_ended = earlier_run(store, parent_id, t1, [0.3], "failed", **{TAG_ERROR: "OOM"})
    killed = earlier_run(store, parent_id, t2, [0.4, 0.45], "killed", "KILLED")
    running = earlier_run(store, parent_id, t3, [0.2])  # the driver died while it ran
    # A child of another sweep run of the same experiment (one whose plan differed): not ours.
    other = store.start_parent()
    earlier_run(store, other, t0, [0.1], fingerprint="0123456789")

    outcomes = restore_outcomes(store.writer, parent_id, trials)
    assert list(outcomes) == ["t000", "t001", "t002", "t003"]
    assert all(outcomes[t.trial_id].trial is t for t in trials)
    seen = {
        k: (o.status, o.recorded, o.run_id, o.last_epoch, o.restarts, o.failures)
        for k, o in outcomes.items()
    }
    assert seen == {
        "t000": (TrialStatus.FINISHED, True, finished, 3, 0, 0),
        "t001": (TrialStatus.FAILED, True, half_ended, 1, 0, 0),
        "t002": (TrialStatus.PENDING, False, killed, 2, 0, 0),
        "t003": (TrialStatus.PENDING, False, running, 1, 0, 0),
    }
    # An ended trial keeps its result (what the summary and the best need); the rest continue.
    run0 = store.client.get_run(finished)
    assert outcomes["t000"].metrics == {**run0.data.metrics, "epoch": 3, "is_last_epoch": 1}
    assert (outcomes["t000"].metrics["test_acc"], outcomes["t000"].metrics["best_test_acc"]) == (
        0.7,
        0.7,
    )
    assert outcomes["t000"].started == run0.info.start_time / 1000
    assert outcomes["t000"].ended == run0.info.end_time / 1000
    assert outcomes["t002"].metrics == {} and outcomes["t003"].metrics == {}
    # Each trial's sweep metric per epoch, for a resumed ASHA's rungs (raysweep.rungs).
    assert outcomes["t000"].metric_history == {1: 0.5, 2: 0.6, 3: 0.7}
    assert outcomes["t002"].metric_history == {1: 0.4, 2: 0.45}
    # A failed trial's error, in the words its run keeps (what the summary says of it).
    assert outcomes["t001"].error == "OOM" and outcomes["t000"].error is None
    assert outcomes["t002"].started is None and outcomes["t002"].ended is None
    # The half-ended run is ended by the writer, as its tag says.
    assert store.writer.wait(grace_s=0)
    statuses = {k: store.client.get_run(o.run_id).info.status for k, o in outcomes.items()}
    assert statuses == {"t000": "FINISHED", "t001": "FAILED", "t002": "KILLED", "t003": "RUNNING"}
    assert [name for name, _ in store.calls] == ["end"]
    assert store.calls[0][1] == (half_ended, "FAILED")
    # Another sweep metric, read as logged.
    losses = restore_outcomes(store.writer, parent_id, trials, "test_loss")
    logged = store.history(killed, "test_loss")
    assert sorted(losses["t002"].metric_history.items()) == logged and len(logged) == 2


def test_restore_outcomes_of_trials_without_a_run(store: Store, trials: list[Trial]) -> None:
    parent_id = store.start_parent()  # the driver died before Tune started any trial
    outcomes = restore_outcomes(store.writer, parent_id, trials)
    assert {k: (o.status, o.recorded, o.run_id, o.last_epoch) for k, o in outcomes.items()} == {
        t.trial_id: (TrialStatus.PENDING, False, None, 0) for t in trials
    }
    earlier_run(store, parent_id, trials[1], [])  # created, no epoch logged yet
    outcomes = restore_outcomes(store.writer, parent_id, trials)
    assert (outcomes["t001"].last_epoch, outcomes["t001"].status) == (0, TrialStatus.PENDING)
    assert outcomes["t001"].run_id is not None and outcomes["t000"].run_id is None


def test_a_changed_trial_is_refused(store: Store, trials: list[Trial]) -> None:
    parent_id = store.start_parent()
    changed = make_trials(train={"epochs": 4, "log_model": False, "max_failures": 2})
    assert [t.trial_id for t in changed] == [t.trial_id for t in trials]
    assert changed[1].fingerprint != trials[1].fingerprint
    earlier_run(store, parent_id, trials[0], [0.5])
    earlier_run(store, parent_id, changed[1], [0.5])
    with pytest.raises(UserError) as caught:
        restore_outcomes(store.writer, parent_id, trials)
    assert str(caught.value) == (
        "--resume: trial t001 of the earlier run does not match the sweep file (it changed "
        "since); run without --resume to start a new sweep"
    )


def test_a_trial_gone_from_the_plan_is_refused(store: Store, trials: list[Trial]) -> None:
    parent_id = store.start_parent()
    earlier_run(store, parent_id, trials[3], [0.5])
    fewer = make_trials(sweep={"studies": [{"name": "lr", "axes": {"train.optimizer.lr": [1e-3]}}]})
    assert [t.trial_id for t in fewer] == ["t000"]
    with pytest.raises(UserError, match=r"^--resume: trial t003 of the earlier run does not"):
        restore_outcomes(store.writer, parent_id, fewer)


# ---- the recorder on restored outcomes --------------------------------------------------------


@dataclass
class Resumed:
    """A sweep resumed from an earlier run: t000 finished, t001 failed, t002 killed at epoch
    2, t003 running at epoch 1; the recorder over the restored outcomes."""

    store: Store
    parent_id: str
    trials: list[Trial]
    outcomes: dict[str, TrialOutcome]
    recorder: SweepRecorder
    console: io.StringIO
    runs: dict[str, str]


@pytest.fixture
def resumed(store: Store, trials: list[Trial]) -> Resumed:
    parent_id = store.start_parent()
    t0, t1, t2, t3 = trials
    runs = {
        "t000": earlier_run(store, parent_id, t0, [0.5, 0.6, 0.7], "finished", "FINISHED"),
        "t001": earlier_run(store, parent_id, t1, [0.3], "failed", "FAILED"),
        "t002": earlier_run(
            store, parent_id, t2, [0.4, 0.45], "killed", "KILLED", **{"raysweep.restarts": "2"}
        ),
        "t003": earlier_run(store, parent_id, t3, [0.2]),
    }
    outcomes = restore_outcomes(store.writer, parent_id, trials)
    console, stream = make_console(len(trials))
    recorder = SweepRecorder(store.writer, parent_id, outcomes, console, store.experiment_path)
    store.calls.clear()
    return Resumed(store, parent_id, trials, outcomes, recorder, stream, runs)


def test_a_resumed_sweep_goes_on_in_the_same_runs(resumed: Resumed) -> None:
    fake = {t.trial_id: tune_trial(t) for t in resumed.trials}
    rec = resumed.recorder
    # Tune's record of t000 was older than MLflow's: it runs it again (its done marker is
    # replayed). The recorder ignores it: MLflow has all of it.
    rec.on_trial_start(0, [], fake["t000"])
    rec.on_trial_result(0, [], fake["t000"], result(3, 0.7, last=True))
    rec.on_trial_complete(0, [], fake["t000"])
    # t002 goes on from its epoch-2 checkpoint.
    rec.on_trial_start(0, [], fake["t002"])
    rec.on_trial_result(0, [], fake["t002"], result(3, 0.5, last=True, resumed_from=2))
    rec.on_trial_complete(0, [], fake["t002"])
    # t003's newest checkpoint is epoch 1: its epoch 2 is new.
    rec.on_trial_start(0, [], fake["t003"])
    rec.on_trial_result(0, [], fake["t003"], result(2, 0.25, resumed_from=1))
    assert resumed.store.writer.wait(grace_s=0)

    store = resumed.store
    children = store.children(resumed.parent_id)
    assert {k: r.info.run_id for k, r in children.items()} == resumed.runs
    assert store.writes("create_child") == []
    assert [args[0] for _, args in store.writes("reopen")] == [
        resumed.runs["t002"],
        resumed.runs["t003"],
    ]
    assert store.history(resumed.runs["t000"]) == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert store.history(resumed.runs["t002"]) == [(1, 0.4), (2, 0.45), (3, 0.5)]
    assert store.history(resumed.runs["t003"]) == [(1, 0.2), (2, 0.25)]
    statuses = {k: (r.info.status, r.data.tags[TAG_STATUS]) for k, r in children.items()}
    assert statuses == {
        "t000": ("FINISHED", "finished"),
        "t001": ("FAILED", "failed"),
        "t002": ("FINISHED", "finished"),
        "t003": ("RUNNING", "running"),
    }
    assert {k: o.status for k, o in resumed.outcomes.items()} == {
        "t000": "finished",
        "t001": "failed",
        "t002": "finished",
        "t003": "running",
    }
    assert events(resumed.console) == [
        "t002 started   lenet max_failures=0 lr=3e-3",
        "t002 resumed   from its epoch-2 checkpoint",
        "t002 epoch 3/3  test_acc 0.5000  train_loss 0.3333  1003 img/s   "
        "| 2/4 done, 1 running, best test_acc 0.7000 (t000)",
        "t002 finished  best test_acc 0.5000 at epoch 3",
        "3/4 done, 0 running, best test_acc 0.7000 (t000)",
        "t003 started   lenet max_failures=5 lr=3e-4",
        "t003 resumed   from its epoch-1 checkpoint",
        "t003 epoch 2/3  test_acc 0.2500  train_loss 0.5000  1002 img/s   "
        "| 3/4 done, 1 running, best test_acc 0.7000 (t000)",
    ]


def test_the_restarts_tag_keeps_counting_across_resume(resumed: Resumed) -> None:
    trial = tune_trial(resumed.trials[2])
    resumed.recorder.on_trial_start(0, [], trial)
    resumed.recorder.on_trial_result(0, [], trial, result(3, 0.5, resumed_from=2))
    assert resumed.store.writer.wait(grace_s=0)
    run = resumed.store.client.get_run(resumed.runs["t002"])
    assert run.data.tags["raysweep.restarts"] == "3"


def test_the_retry_line_counts_the_failures_tune_counts(resumed: Resumed, tmp_path: Path) -> None:
    (tmp_path / "error.txt").write_text("RuntimeError: worker died\n")
    trial = tune_trial(resumed.trials[3], error_file=str(tmp_path / "error.txt"))
    trial.num_failures = 1  # t003 failed once before the driver died; Tune's state says so
    resumed.recorder.on_trial_start(0, [], trial)
    trial.num_failures += 1
    resumed.recorder.on_trial_recover(0, [], trial)
    assert events(resumed.console)[-1] == (
        "t003 retrying  failure 2 of 5 allowed: RuntimeError: worker died"
    )


# ---- a run the driver died making (fault point run_created) ------------------------------------


def test_a_trial_run_killed_before_its_params_gets_them_when_it_goes_on(
    store: Store, trials: list[Trial]
) -> None:
    """The driver died between creating t000's run and logging anything else on it: `--resume`
    goes on in that run and logs its params, and (no epoch landed) where it ran and its size."""
    from raysweep.records import PARAM_NUM_PARAMS
    from raysweep.tracking import trial_params

    parent_id = store.start_parent()
    t0 = trials[0]
    tags = {
        "mlflow.parentRunId": parent_id,
        TAG_TRIAL: t0.trial_id,
        "raysweep.fingerprint": t0.fingerprint,
        TAG_STATUS: "running",
    }
    run_id = store.client.create_run(store.writer.experiment_id, tags=tags).info.run_id
    outcomes = restore_outcomes(store.writer, parent_id, trials)
    console, _ = make_console(len(trials))
    recorder = SweepRecorder(store.writer, parent_id, outcomes, console, store.experiment_path)
    fake = tune_trial(t0)
    recorder.on_trial_start(0, [], fake)
    recorder.on_trial_result(0, [], fake, result(1, 0.5, host="h1"))
    assert store.writer.wait(grace_s=0)

    assert store.writes("create_child") == []
    run = store.client.get_run(run_id)
    expected = trial_params(t0.config.model_dump(mode="json"))
    assert run.data.params == {**expected, PARAM_NUM_PARAMS: str(NUM_PARAMS)}
    assert run.data.params["train.optimizer.lr"] == str(t0.config.train.optimizer.lr)
    assert run.data.tags["raysweep.host"] == "h1"
    assert store.history(run_id) == [(1, 0.5)]


def test_reopen_logs_only_the_params_a_run_lacks(store: Store) -> None:
    """A resumed sweep may see another value (another cluster's resources): the first stays, and
    MLflow's refusal to change a param does not stop the resume."""
    parent_id = store.start_parent(trials=4, cpus="1")
    store.writer.reopen(parent_id, {TAG_STATUS: "running"}, {"trials": 4, "cpus": 2, "gpus": 0})
    assert store.client.get_run(parent_id).data.params == {"trials": "4", "cpus": "1", "gpus": "0"}


def test_a_resumed_parent_gets_the_files_a_crash_left_out(store: Store) -> None:
    """Killed at `run_created:sweep`, the parent has its tags only: `--resume` logs its params
    and files; a file it has is not replaced (the sweep file as the sweep started)."""
    from raysweep.runner import ParentRecord, _reopen_parent

    parent_id = store.client.create_run(store.writer.experiment_id).info.run_id
    store.writer.log_text(parent_id, "first: 1\n", "sweep.yaml")
    record = ParentRecord(
        params={"trials": 2}, files={"sweep.yaml": "edited: 2\n", "plan.json": "[]"}
    )
    _reopen_parent(store.writer, parent_id, record)
    assert store.writer.wait(grace_s=0)

    run = store.client.get_run(parent_id)
    assert run.info.status == "RUNNING" and run.data.params == {"trials": "2"}
    assert run.data.tags[TAG_STATUS] == "running"
    texts = {
        name: Path(store.client.download_artifacts(parent_id, name)).read_text()
        for name in ("sweep.yaml", "plan.json")
    }
    assert texts == {"sweep.yaml": "first: 1\n", "plan.json": "[]"}
