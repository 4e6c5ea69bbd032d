"""The Tune callback on the driver (`raysweep.recorder.SweepRecorder`), driven by fake Tune trials
against a real `MlflowWriter` on a temporary SQLite store: one child run per trial, each epoch
logged once, the end status from the last result, failures, retries, the trials Tune ended
without telling it, and a trial an earlier run recorded. No Ray session, no torch."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from raysweep.plan import Trial
from raysweep.recorder import SweepRecorder, current_recorder
from raysweep.records import (
    FINAL_KEYS,
    LOGGED_PER_EPOCH,
    PARAM_NUM_PARAMS,
    TAG_ERROR,
    TAG_STATUS,
    TAG_TRIAL,
    TrialOutcome,
    TrialStatus,
)
from raysweep.storage import filesystem
from raysweep.tracking import trial_params
from raysweep.trial_dirs import ended_before, mark_done, trial_dir_at
from tests.fakes import (
    EXPERIMENT_DIR,
    NUM_PARAMS,
    FakeCheckpoint,
    FakeTrial,
    Store,
    events,
    make_console,
    make_trials,
    open_store,
    result,
    tune_trial,
)


@dataclass
class Sweep:
    """A recorder over the four planned trials, with its store, outcomes and console."""

    store: Store
    parent_id: str
    trials: list[Trial]
    outcomes: dict[str, TrialOutcome]
    recorder: SweepRecorder
    console: io.StringIO

    def fake(self, trial_id: str, **attrs: Any) -> FakeTrial:
        """The fake Tune trial of planned trial `trial_id`."""
        return tune_trial(next(t for t in self.trials if t.trial_id == trial_id), **attrs)

    def run_id(self, trial_id: str) -> str:
        """The MLflow run id of a trial (after `wait()`)."""
        run_id = self.outcomes[trial_id].run_id
        return run_id.result() if isinstance(run_id, Future) else run_id

    def wait(self) -> None:
        """Every write submitted so far is done."""
        assert self.store.writer.wait(grace_s=0)

    def run(self, trial_id: str) -> Any:
        """The trial's MLflow run, read back."""
        return self.store.client.get_run(self.run_id(trial_id))

    def lines(self) -> list[str]:
        """The console's event lines so far, without time stamps."""
        return events(self.console)


@pytest.fixture
def sweep(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sweep]:
    with open_store(tmp_path, tmp_path_factory, monkeypatch) as store:
        parent_id = store.start_parent()
        trials = make_trials()
        outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
        console, stream = make_console(len(trials))
        recorder = SweepRecorder(store.writer, parent_id, outcomes, console, store.experiment_path)
        store.calls.clear()
        yield Sweep(store, parent_id, trials, outcomes, recorder, stream)


def start(sweep: Sweep, trial_id: str, **attrs: Any) -> FakeTrial:
    """Tune starts a trial: the recorder is told."""
    trial = sweep.fake(trial_id, **attrs)
    sweep.recorder.on_trial_start(0, [], trial)
    return trial


def report(sweep: Sweep, trial: FakeTrial, metrics: dict[str, Any]) -> None:
    """A trial reports a result: the recorder is told, as Tune does."""
    trial.last_result = metrics
    sweep.recorder.on_trial_result(0, [], trial, metrics)


# ---- on_trial_start ---------------------------------------------------------------------------


def test_start_creates_one_child_run_per_trial_with_its_tags_and_params(sweep: Sweep) -> None:
    t000 = start(sweep, "t000")
    t002 = start(sweep, "t002")
    # Each Tune trial is held to its own train.max_failures, not Tune's sweep-wide number.
    assert (t000.max_failures, t002.max_failures) == (2, 0)
    assert sweep.outcomes["t000"].status == TrialStatus.RUNNING
    assert sweep.outcomes["t000"].started is not None
    sweep.wait()
    runs = sweep.store.children(sweep.parent_id)
    assert sorted(runs) == ["t000", "t002"]
    for trial_id, studies in (("t000", "lr"), ("t002", "fragile")):
        run = runs[trial_id]
        planned = next(t for t in sweep.trials if t.trial_id == trial_id)
        assert run.info.run_id == sweep.run_id(trial_id)
        assert run.info.run_name == planned.name
        assert run.info.status == "RUNNING"
        tags = {k: v for k, v in run.data.tags.items() if k.startswith("raysweep.")}
        assert tags == {
            TAG_TRIAL: trial_id,
            "raysweep.studies": studies,
            "raysweep.fingerprint": planned.fingerprint,
            "raysweep.overrides": json.dumps(planned.overrides, sort_keys=True),
            "raysweep.executor": "inline",
            TAG_STATUS: "running",
        }
        assert run.data.tags["mlflow.parentRunId"] == sweep.parent_id
        assert run.data.params == trial_params(planned.config.model_dump(mode="json"))
    assert runs["t000"].data.params["train.optimizer.lr"] == "0.001"
    assert runs["t002"].data.params["train.max_failures"] == "0"
    assert runs["t000"].info.run_name == "lenet lr=1e-3"
    assert sweep.lines() == [
        "t000 started   lenet lr=1e-3",
        "t002 started   lenet max_failures=0 lr=3e-3",
    ]


# ---- on_trial_result --------------------------------------------------------------------------


def test_each_epoch_is_logged_once_across_a_restarted_worker(sweep: Sweep) -> None:
    trial = start(sweep, "t000")
    report(sweep, trial, result(1, 0.5))
    report(sweep, trial, result(2, 0.6))
    # The worker died after epoch 2 was logged; its newest checkpoint was epoch 1, so it
    # redoes epoch 2 (a different number, not logged again), then goes on.
    report(sweep, trial, result(2, 0.65, resumed_from=1))
    out = sweep.outcomes["t000"]
    assert (out.last_epoch, out.restarts, out.metrics["test_acc"]) == (2, 1, 0.65)
    report(sweep, trial, result(1, 0.1))  # an older epoch: ignored
    assert out.metrics["test_acc"] == 0.65
    report(sweep, trial, result(3, 0.7, last=True))
    sweep.wait()
    run_id = sweep.run_id("t000")
    assert sweep.store.history(run_id) == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert sweep.store.history(run_id, "images_per_s") == [(1, 1001.0), (2, 1002.0), (3, 1003.0)]
    tags = sweep.run("t000").data.tags
    assert tags["raysweep.restarts"] == "1"
    assert (tags["raysweep.node_id"], tags["raysweep.host"], tags["raysweep.device"]) == (
        "node-a",
        "host-a",
        "cpu",
    )
    assert len(sweep.store.writes("log_epoch")) == 3
    assert sweep.lines() == [
        "t000 started   lenet lr=1e-3",
        "t000 epoch 1/3  test_acc 0.5000  train_loss 1.0000  1001 img/s   "
        "| 0/4 done, 1 running, best test_acc 0.5000 (t000)",
        "t000 epoch 2/3  test_acc 0.6000  train_loss 0.5000  1002 img/s   "
        "| 0/4 done, 1 running, best test_acc 0.6000 (t000)",
        "t000 resumed   from its epoch-1 checkpoint",
        "t000 epoch 3/3  test_acc 0.7000  train_loss 0.3333  1003 img/s   "
        "| 0/4 done, 1 running, best test_acc 0.7000 (t000)",
    ]


def test_epochs_whose_results_were_lost_are_logged_from_the_checkpoint(sweep: Sweep) -> None:
    """A worker's epoch-1 and -2 results died with it (Ray Train queues reports) after their
    checkpoints were saved: the first result after the restart carries the checkpoint's
    history, and the run's epochs stay gap-free (where the trial ran: its first result seen)."""
    trial = start(sweep, "t000")
    before = [
        {k: v for k, v in result(e, acc).items() if k in LOGGED_PER_EPOCH}
        for e, acc in ((1, 0.5), (2, 0.6))
    ]
    report(sweep, trial, result(3, 0.7, last=True, resumed_from=2, epochs_before=before))
    sweep.wait()
    run_id = sweep.run_id("t000")
    assert sweep.store.history(run_id) == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert sweep.store.history(run_id, "images_per_s") == [(1, 1001.0), (2, 1002.0), (3, 1003.0)]
    assert sweep.outcomes["t000"].last_epoch == 3
    assert sweep.run("t000").data.tags["raysweep.node_id"] == "node-a"


def test_every_resume_counts_in_the_restarts_tag(sweep: Sweep) -> None:
    trial = start(sweep, "t000")
    report(sweep, trial, result(1, 0.5))
    report(sweep, trial, result(2, 0.6, resumed_from=1))
    report(sweep, trial, result(3, 0.7, resumed_from=2))
    sweep.wait()
    assert sweep.run("t000").data.tags["raysweep.restarts"] == "2"
    assert sweep.store.history(sweep.run_id("t000")) == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert [line for line in sweep.lines() if "resumed" in line] == [
        "t000 resumed   from its epoch-1 checkpoint",
        "t000 resumed   from its epoch-2 checkpoint",
    ]


def test_the_first_result_tags_where_the_trial_runs_once(sweep: Sweep) -> None:
    trial = start(sweep, "t001")
    report(sweep, trial, result(1, 0.5, node_id="n1", host="h1", device="cuda:0"))
    report(sweep, trial, result(2, 0.6, node_id="n2", host="h2", device="cuda:1", num_params=1))
    sweep.wait()
    run = sweep.run("t001")
    assert run.data.params[PARAM_NUM_PARAMS] == str(NUM_PARAMS)
    assert len(sweep.store.writes("log_params")) == 1
    tags = run.data.tags
    assert (tags["raysweep.node_id"], tags["raysweep.host"], tags["raysweep.device"]) == (
        "n1",
        "h1",
        "cuda:0",
    )


# ---- on_trial_complete ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "extra", "status"),
    [
        (True, {}, "finished"),
        (False, {}, "stopped"),  # ASHA stopped it: its last result is not its last epoch
        (True, {"stopped_early": 1}, "early_stopped"),
        (True, {"diverged": 1, "stopped_early": 0}, "diverged"),
    ],
)
def test_complete_takes_its_status_from_the_last_result(
    sweep: Sweep, last: bool, extra: dict[str, Any], status: str
) -> None:
    trial = start(sweep, "t000")
    report(sweep, trial, result(1, 0.8))
    report(sweep, trial, result(2, 0.9, last=last, **extra))
    sweep.recorder.on_trial_complete(0, [], trial)
    out = sweep.outcomes["t000"]
    assert out.status == status and out.ended is not None
    sweep.wait()
    run = sweep.run("t000")
    assert run.info.status == "FINISHED"  # diverged and stopped are results, not failures
    assert run.data.tags[TAG_STATUS] == status
    assert run.data.tags["raysweep.epochs_run"] == "2"
    last_result = result(2, 0.9, last=last, **extra)
    final = {k: v for k, v in run.data.metrics.items() if k not in LOGGED_PER_EPOCH}
    assert final == {k: float(last_result[k]) for k in FINAL_KEYS if k in last_result}
    assert (final["best_test_acc"], final["best_epoch"], final["train_time_s"]) == (0.9, 2, 4)
    assert (final["stopped_early"], final["diverged"]) == (
        extra.get("stopped_early", 0),
        extra.get("diverged", 0),
    )
    # The status tag is the last write before the end: `--resume` takes a run that has it as
    # completely recorded.
    assert [name for name, _ in sweep.store.calls] == [
        "create_child",
        "log_final",  # where it runs
        "log_params",  # its model's size (both before the first epoch: `--resume` redoes
        "log_epoch",  # them only if no epoch landed)
        "log_epoch",
        "hold",  # the `trial_ended` fault point
        "log_final",  # the final metrics, epochs_run
        "log_final",  # the status tag
        "end",
    ]
    *_, (_, final_write), (_, status_write), (_, end_write) = sweep.store.calls
    assert final_write[2] == {"raysweep.epochs_run": 2}
    assert status_write[1:] == ({}, {TAG_STATUS: status})
    assert end_write[1:] == ("FINISHED",)
    assert sweep.store.checkpoints == []  # no checkpoint reported: nothing to log from one
    best = "" if status == "diverged" else ", best test_acc 0.9000 (t000)"  # never best
    assert sweep.lines()[-2:] == [
        f"t000 {status:<9} best test_acc 0.9000 at epoch 2",
        f"1/4 done, 0 running{best}",
    ]


def test_a_trials_checkpoint_is_logged_when_it_ends(sweep: Sweep) -> None:
    trial = start(sweep, "t001")
    report(sweep, trial, result(1, 0.5))
    sweep.recorder.on_checkpoint(0, [], trial, FakeCheckpoint("/tune/t001/checkpoint_000000"))
    report(sweep, trial, result(2, 0.6, last=True))
    sweep.recorder.on_checkpoint(0, [], trial, FakeCheckpoint("/tune/t001/checkpoint_000001"))
    sweep.recorder.on_trial_complete(0, [], trial)
    sweep.wait()
    # (run id, checkpoint, log_model, trial id): the newest checkpoint, the trial's log_model.
    assert sweep.store.checkpoints == [
        (sweep.run_id("t001"), "/tune/t001/checkpoint_000001", False, "t001")
    ]


def test_a_worker_groups_checkpoint_comes_with_its_result(sweep: Sweep) -> None:
    trial = start(sweep, "t001")
    report(sweep, trial, result(1, 0.5, checkpoint_path="/train/t001/checkpoint_1"))
    report(sweep, trial, result(2, 0.6, last=True))  # no checkpoint with this one
    sweep.recorder.on_trial_complete(0, [], trial)
    sweep.wait()
    assert sweep.store.checkpoints == [
        (sweep.run_id("t001"), "/train/t001/checkpoint_1", False, "t001")
    ]


@pytest.mark.parametrize("marker", [True, False], ids=["done-marker", "tunes-record"])
def test_a_trial_that_reports_its_end_again_is_logged_from_its_last_checkpoint(
    sweep: Sweep, tmp_path: Path, marker: bool
) -> None:
    """Its process died between its last checkpoint and its done marker; restarted from that
    checkpoint, it reports its end again and no checkpoint event comes. Its record is finished
    from the checkpoint its done marker names (written as it ended this time), else from Tune's
    record of its latest (it had none: a model and its files were not logged at all)."""
    trial = start(sweep, "t001")
    trial.checkpoint = FakeCheckpoint("/tune/t001/checkpoint_000001")  # as Tune restored it
    if marker:
        fs, trial_dir = trial_dir_at(str(tmp_path / "ray"), EXPERIMENT_DIR, "t001")
        mark_done(fs, trial_dir, result(2, 0.6, last=True), "/tune/t001/checkpoint_000002")
    report(sweep, trial, result(2, 0.6, last=True, resumed_from=2))
    sweep.recorder.on_trial_complete(0, [], trial)
    sweep.wait()
    expected = f"/tune/t001/checkpoint_00000{2 if marker else 1}"
    assert sweep.store.checkpoints == [(sweep.run_id("t001"), expected, False, "t001")]


def test_a_stopped_trial_leaves_its_done_marker(sweep: Sweep) -> None:
    """The scheduler stopped t001 (its process writes no done marker then): the driver leaves
    one, so a Tune restored from a state saved before the stop, which starts t001 again, gets
    that end reported again instead of t001 training on. A finished trial's own process
    writes its marker: the driver leaves none for t002."""
    from raysweep.trial_dirs import read_done

    t001, t002 = start(sweep, "t001"), start(sweep, "t002")
    report(sweep, t001, result(1, 0.5))
    sweep.recorder.on_checkpoint(0, [], t001, FakeCheckpoint("/tune/t001/checkpoint_000000"))
    sweep.recorder.on_trial_complete(0, [], t001)
    report(sweep, t002, result(1, 0.6, last=True))
    sweep.recorder.on_trial_complete(0, [], t002)
    sweep.wait()
    done = read_done(sweep.store.experiment_path, "t001")
    assert done is not None and (done["epoch"], done["is_last_epoch"]) == (1, 0), done
    assert done["checkpoint_path"] == "/tune/t001/checkpoint_000000"
    assert sweep.outcomes["t001"].status == "stopped"
    assert read_done(sweep.store.experiment_path, "t002") is None


# ---- failures ---------------------------------------------------------------------------------


def test_error_ends_the_run_failed_with_its_error_txt(sweep: Sweep, tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nValueError: boom\n")
    trial = start(sweep, "t002")
    report(sweep, trial, result(1, 0.5))
    trial.status, trial.error_file = FakeTrial.ERROR, str(error_file)
    sweep.recorder.on_trial_error(0, [], trial)
    out = sweep.outcomes["t002"]
    assert out.status == TrialStatus.FAILED
    assert out.error == error_file.read_text()
    sweep.wait()
    run = sweep.run("t002")
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_STATUS] == "failed"
    assert sweep.store.artifact_text(run.info.run_id, "error.txt") == error_file.read_text()
    assert [name for name, _ in sweep.store.calls] == [
        "create_child",
        "log_final",
        "log_params",
        "log_epoch",
        "log_text",  # error.txt
        "hold",
        "log_final",
        "log_final",  # the status tag
        "end",
    ]
    assert sweep.store.calls[-2][1][1:] == ({}, {TAG_STATUS: "failed"})
    assert sweep.store.calls[-1][1][1:] == ("FAILED",)
    assert sweep.lines()[-2:] == ["t002 FAILED    ValueError: boom", "1/4 done, 0 running"]
    # The error in a few words on the run (what `--resume` says of it), and the failure left
    # in the trial's directory, so a resumed Tune that starts it again does not train it.
    assert run.data.tags[TAG_ERROR] == "ValueError: boom"
    fs, trial_dir = filesystem(f"{sweep.store.experiment_path}/t002")
    assert ended_before(fs, trial_dir)
    fs, other = filesystem(f"{sweep.store.experiment_path}/t001")
    assert not ended_before(fs, other)


def test_error_without_an_error_file_takes_rays_message(sweep: Sweep) -> None:
    trial = start(sweep, "t002")
    trial.status, trial.error_file = FakeTrial.ERROR, "/no/such/error.txt"
    trial.error_msg = "The actor died unexpectedly"
    sweep.recorder.on_trial_error(0, [], trial)
    sweep.wait()
    run_id = sweep.run_id("t002")
    assert sweep.store.artifact_text(run_id, "error.txt") == "The actor died unexpectedly"
    # Ray's words for a lost process, said shortly, with what happens next (error.txt has them).
    assert (
        sweep.lines()[-2] == "t002 FAILED    its process died; no retry left (train.max_failures 0)"
    )


def test_recover_says_the_trials_own_limit_and_keeps_its_run(sweep: Sweep, tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback ...\nRuntimeError: worker died\n")
    trial = start(sweep, "t003", max_failures=2)  # Tune's number; t003 allows 5
    assert trial.max_failures == 5
    started = sweep.outcomes["t003"].started
    report(sweep, trial, result(1, 0.5))
    trial.error_file = str(error_file)
    for _ in range(2):
        trial.num_failures += 1  # Tune counts the failure, then tells the recorder
        sweep.recorder.on_trial_recover(0, [], trial)
        sweep.recorder.on_trial_start(0, [], trial)  # and restarts the trial
    out = sweep.outcomes["t003"]
    assert (out.failures, out.status, out.started) == (2, TrialStatus.RUNNING, started)
    sweep.wait()
    assert list(sweep.store.children(sweep.parent_id)) == ["t003"]  # the same run goes on
    assert len(sweep.store.writes("create_child")) == 1
    assert len(sweep.store.writes("reopen")) == 2
    assert sweep.run("t003").info.status == "RUNNING"
    assert [line for line in sweep.lines() if not line.startswith("t003 epoch")] == [
        "t003 started   lenet max_failures=5 lr=3e-4",
        "t003 retrying  failure 1 of 5 allowed: RuntimeError: worker died",
        "t003 retrying  failure 2 of 5 allowed: RuntimeError: worker died",
    ]


def test_a_trial_that_could_not_be_placed_is_not_said_to_be_retried(
    sweep: Sweep, tmp_path: Path
) -> None:
    """Tune requeues a worker group's trial whose driver raised PlacementTimeoutError, and
    PlacementGuard fails it before it starts again: no "retrying" line for it."""
    import cloudpickle

    from raysweep.placement import PlacementTimeoutError

    why = "t003 could not be placed in 3 s: it needs 1 GPU per worker and no node offered it"
    error_file, pickled = tmp_path / "error.txt", tmp_path / "error.pkl"
    error_file.write_text(f"Traceback ...\nraysweep.placement.PlacementTimeoutError: {why}\n")
    pickled.write_bytes(cloudpickle.dumps(PlacementTimeoutError(why)))
    trial = start(sweep, "t003")
    trial.error_file, trial.pickled_error_file = str(error_file), str(pickled)
    trial.num_failures += 1
    sweep.recorder.on_trial_recover(0, [], trial)
    assert sweep.outcomes["t003"].failures == 0
    assert not [line for line in sweep.lines() if "retrying" in line], sweep.lines()
    # Any other error is a retry, said as one.
    pickled.write_bytes(cloudpickle.dumps(RuntimeError("worker died")))
    sweep.recorder.on_trial_recover(0, [], trial)
    assert sweep.lines()[-1].startswith("t003 retrying  failure 1 of 5 allowed: "), sweep.lines()


def test_a_failed_worker_group_trial_frees_the_group_its_dead_process_left(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker-group trial with no retry left: the driver removes the placement group its
    controller noted in the trial's directory, which no later attempt of its own will
    (raysweep.left_groups, checked on a real Ray in tests/test_left_groups.py; no Ray here)."""
    from raysweep import left_groups

    removed: list[str] = []
    monkeypatch.setattr(left_groups, "remove_left_group", lambda fs, path: removed.append(path))
    workers = {"executor": "torch_trainer", "cpus_per_worker": 1}
    with open_store(tmp_path, tmp_path_factory, monkeypatch) as store:
        trials = make_trials(resources=workers)
        outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
        console, _ = make_console(len(trials))
        parent_id = store.start_parent()
        recorder = SweepRecorder(store.writer, parent_id, outcomes, console, store.experiment_path)
        for trial_id in ("t000", "t002"):
            trial = tune_trial(next(t for t in trials if t.trial_id == trial_id))
            recorder.on_trial_start(0, [], trial)
            if trial_id == "t000":
                recorder.on_trial_complete(0, [], trial)
                continue
            trial.status, trial.error_msg = FakeTrial.ERROR, "The actor died unexpectedly"
            recorder.on_trial_error(0, [], trial)
        assert store.writer.wait(grace_s=0)
        assert outcomes["t002"].status == TrialStatus.FAILED
        assert removed == [filesystem(f"{store.experiment_path}/t002")[1]]  # t002 only


# ---- the end of the experiment ----------------------------------------------------------------


def test_experiment_end_records_the_trials_tune_ended_unseen(sweep: Sweep, tmp_path: Path) -> None:
    # t000: Tune saved it TERMINATED, the driver died before recording it; its done marker
    # (written after its last epoch) is newer than Tune's last result.
    t000 = sweep.fake("t000", status=FakeTrial.TERMINATED, last_result=result(2, 0.6))
    t000.checkpoint = FakeCheckpoint("/tune/t000/checkpoint_000001")
    fs, trial_dir = trial_dir_at(str(tmp_path / "ray"), EXPERIMENT_DIR, "t000")
    done = result(3, 0.75, last=True, node_id="node-d", host="host-d", device="cuda:0")
    mark_done(fs, trial_dir, done, "/tune/t000/checkpoint_000002")
    # t001: Tune ended it with an error the recorder never heard of.
    error_file = tmp_path / "t001-error.txt"
    error_file.write_text("Traceback ...\nOSError: disk full\n")
    t001 = sweep.fake("t001", status=FakeTrial.ERROR, error_file=str(error_file))
    # t002: still running (Ctrl-C): left for `--resume`.
    t002 = sweep.fake("t002", status=FakeTrial.RUNNING, last_result=result(1, 0.5))
    # t003: TERMINATED without a done marker: its last result and Tune's checkpoint.
    t003 = sweep.fake("t003", status=FakeTrial.TERMINATED, last_result=result(1, 0.4))
    t003.checkpoint = FakeCheckpoint("/tune/t003/checkpoint_000000")

    sweep.recorder.on_experiment_end([t000, t001, t002, t003])
    statuses = {k: o.status for k, o in sweep.outcomes.items()}
    assert statuses == {"t000": "finished", "t001": "failed", "t002": "pending", "t003": "stopped"}
    assert sweep.outcomes["t002"].run_id is None
    sweep.wait()
    runs = sweep.store.children(sweep.parent_id)
    assert sorted(runs) == ["t000", "t001", "t003"]
    r0 = runs["t000"]
    assert (r0.info.status, r0.data.tags[TAG_STATUS]) == ("FINISHED", "finished")
    assert r0.data.tags["raysweep.epochs_run"] == "3"
    assert (r0.data.metrics["best_test_acc"], r0.data.metrics["best_epoch"]) == (0.75, 3.0)
    assert (r0.data.tags["raysweep.node_id"], r0.data.tags["raysweep.device"]) == (
        "node-d",
        "cuda:0",
    )
    r1 = runs["t001"]
    assert (r1.info.status, r1.data.tags[TAG_STATUS]) == ("FAILED", "failed")
    assert sweep.store.artifact_text(r1.info.run_id, "error.txt") == error_file.read_text()
    r3 = runs["t003"]
    assert (r3.info.status, r3.data.tags[TAG_STATUS]) == ("FINISHED", "stopped")
    assert r3.data.tags["raysweep.epochs_run"] == "1"
    assert sweep.store.checkpoints == [
        (r0.info.run_id, "/tune/t000/checkpoint_000002", False, "t000"),
        (r3.info.run_id, "/tune/t003/checkpoint_000000", False, "t003"),
    ]
    assert sweep.lines() == [
        "t000 finished  best test_acc 0.7500 at epoch 3",
        "1/4 done, 0 running, best test_acc 0.7500 (t000)",
        "t001 FAILED    OSError: disk full",
        "2/4 done, 0 running, best test_acc 0.7500 (t000)",
        "t003 stopped   best test_acc 0.4000 at epoch 1",
        "3/4 done, 0 running, best test_acc 0.7500 (t000)",
    ]


def test_experiment_end_leaves_a_trial_without_any_epoch_unfinished(sweep: Sweep) -> None:
    """TERMINATED with no result and no done marker: nothing to record (never `finished`)."""
    trial = sweep.fake("t001", status=FakeTrial.TERMINATED, last_result={})
    sweep.recorder.on_experiment_end([trial])
    assert sweep.outcomes["t001"].status == TrialStatus.PENDING
    sweep.wait()
    assert sweep.store.children(sweep.parent_id) == {}


def test_experiment_end_leaves_the_trials_it_recorded_alone(sweep: Sweep) -> None:
    trial = start(sweep, "t000")
    report(sweep, trial, result(1, 0.5, last=True))
    sweep.recorder.on_trial_complete(0, [], trial)
    trial.status = FakeTrial.TERMINATED
    sweep.wait()
    before = list(sweep.store.calls)
    sweep.recorder.on_experiment_end([trial])
    assert sweep.store.calls == before
    assert sweep.lines()[-1] == "1/4 done, 0 running, best test_acc 0.5000 (t000)"


def test_record_ended_creates_the_run_of_a_trial_never_started(sweep: Sweep) -> None:
    error = "the model cannot be built: ValueError: kernel_size 0"
    sweep.recorder.record_ended(sweep.outcomes["t002"], {}, error=error)
    out = sweep.outcomes["t002"]
    assert (out.status, out.error) == (TrialStatus.FAILED, error)
    assert out.started is not None and out.ended is not None
    sweep.wait()
    runs = sweep.store.children(sweep.parent_id)
    assert list(runs) == ["t002"]
    run = runs["t002"]
    planned = next(t for t in sweep.trials if t.trial_id == "t002")
    assert run.data.params == trial_params(planned.config.model_dump(mode="json"))
    assert (run.info.status, run.data.tags[TAG_STATUS]) == ("FAILED", "failed")
    assert run.data.tags["raysweep.fingerprint"] == planned.fingerprint
    assert sweep.store.artifact_text(run.info.run_id, "error.txt") == error
    assert sweep.lines() == [
        "t002 FAILED    the model cannot be built: ValueError: kernel_size 0",
        "1/4 done, 0 running",
    ]


# ---- a trial an earlier run recorded ----------------------------------------------------------


def test_a_recorded_trial_ignores_every_event(sweep: Sweep, tmp_path: Path) -> None:
    out = sweep.outcomes["t001"]
    out.status, out.recorded, out.run_id = TrialStatus.FINISHED, True, "earlier-run"
    out.metrics, out.last_epoch = result(3, 0.9, last=True), 3
    before = dataclasses.replace(out, metrics=dict(out.metrics))
    (tmp_path / "err.txt").write_text("RuntimeError: boom\n")
    trial = sweep.fake("t001", max_failures=7, error_file=str(tmp_path / "err.txt"))
    recorder = sweep.recorder
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, result(4, 0.1, resumed_from=3))
    recorder.on_checkpoint(0, [], trial, FakeCheckpoint("/tune/t001/checkpoint_9"))
    recorder.on_trial_recover(0, [], trial)
    recorder.on_trial_error(0, [], trial)
    recorder.on_trial_complete(0, [], trial)
    for status in (FakeTrial.TERMINATED, FakeTrial.ERROR):
        trial.status = status
        recorder.on_experiment_end([trial])
    recorder.record_ended(out, result(5, 0.2), error="late")
    assert out == before
    assert trial.max_failures == 7
    assert sweep.store.calls == []
    assert sweep.console.getvalue() == ""


def test_the_recorder_pickles_as_the_live_one(sweep: Sweep) -> None:
    assert current_recorder() is sweep.recorder
    data = pickle.dumps(sweep.recorder)
    console, _ = make_console(4)
    live = SweepRecorder(sweep.store.writer, sweep.parent_id, {}, console, "/elsewhere")
    assert pickle.loads(data) is live  # a resumed sweep records with its own writer and console


def test_the_sweeps_scheduler_gives_asha_back_what_an_earlier_run_recorded(sweep: Sweep) -> None:
    """As Tune adds a trial (restored or new), the sweep's scheduler refills ASHA's rungs from
    the trial's metric per epoch that `--resume` read from MLflow (raysweep.rungs)."""
    from ray.tune.schedulers import ASHAScheduler

    from raysweep.placement import PlacementGuard

    asha = ASHAScheduler(time_attr="epoch", metric="test_acc", mode="max", max_t=4, grace_period=1)
    guard = PlacementGuard(asha)
    sweep.outcomes["t001"].metric_history = {1: 0.7, 2: 0.8}
    guard.on_trial_add(None, dataclasses.replace(sweep.fake("t001"), trial_id="tune_1"))
    guard.on_trial_add(None, dataclasses.replace(sweep.fake("t002"), trial_id="tune_2"))  # new
    rungs = [recorded for _, recorded in asha._trial_info["tune_1"]._rungs]
    assert [r for r in rungs if r] == [{"tune_1": 0.7}]  # rung 1 (rungs at 1 and 4 here)
    assert all("tune_2" not in r for r in rungs)
