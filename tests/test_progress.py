"""The console lines of a running sweep (`raysweep.progress.Console`): the header, each event's
exact line (the end-to-end tests grep for them), the done/running counts and the best so far,
which is never a failed, diverged or killed trial; quiet mode prints no event line."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from raysweep import progress
from raysweep.plan import Trial
from raysweep.progress import Console
from raysweep.records import TrialOutcome, TrialStatus
from raysweep.resources import TrialResources
from tests.fakes import events, make_console, make_spec, make_trials, result


@pytest.fixture
def trials() -> list[Trial]:
    return make_trials()


def outcome(trial: Trial, status: str, best: float | None = None, **metrics: Any) -> TrialOutcome:
    """An outcome with `status` whose best (and final) test_acc is `best`, if it has a result;
    `metrics` replace those of its last result."""
    last = result(3, best, last=True, **metrics) if best is not None else {}
    return TrialOutcome(trial, status=TrialStatus(status), metrics=last)


def test_the_header_says_what_runs_and_where_it_is_recorded() -> None:
    stream = io.StringIO()
    console = Console(stream=stream)
    spec = make_spec(sweep={"metric": "test_loss", "goal": "min"})
    trials = make_trials()
    one = {"main": TrialResources(1, 2.0, 0.5, inline=True)}
    console.sweep_started(spec, trials[:1], one, 3, "sqlite:////w/mlflow.db", "7")
    assert stream.getvalue().splitlines() == [
        "raysweep: sweep 'unit': 1 trial, 1 worker x (2 CPU, 0.5 GPU) each (inline), "
        "up to 3 at a time; scheduler fifo",
        "raysweep: tracking sqlite:////w/mlflow.db (experiment id 7)",
    ]
    assert (console.metric, console.goal, console.total) == ("test_loss", "min", 1)
    stream.truncate(0)
    stream.seek(0)
    same = {"lr": TrialResources(2, 1.0, 0.0), "fragile": TrialResources(2, 1.0, 0.0)}
    console.sweep_started(make_spec(), make_trials(), same, 1, "u", "0")
    assert stream.getvalue().splitlines()[0] == (
        "raysweep: sweep 'unit': 4 trials, 2 workers x (1 CPU) each (torch_trainer), "
        "up to 1 at a time; scheduler fifo"
    )
    stream.truncate(0)
    stream.seek(0)
    differ = {
        "lr": TrialResources(1, 1.0, 0.0, inline=True),
        "fragile": TrialResources(2, 1.0, 0.0),
    }
    console.sweep_started(make_spec(), make_trials(), differ, 2, "u", "0")
    assert stream.getvalue().splitlines()[0] == (
        "raysweep: sweep 'unit': 4 trials, resources per study (lr: 1 worker x (1 CPU) "
        "(inline); fragile: 2 workers x (1 CPU) (torch_trainer)), up to 2 at a time; "
        "scheduler fifo"
    )


def test_event_lines_are_stamped_with_the_time_since_the_start(
    trials: list[Trial], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(progress, "time", SimpleNamespace(time=lambda: now[0]))
    console, stream = make_console(4)
    out = TrialOutcome(trials[0])
    for elapsed in (0.0, 125.9, 3661.0, 60_000.0):
        now[0] = 1000.0 + elapsed
        console.trial_started(out)
    assert stream.getvalue().splitlines() == [
        "[  0:00] t000 started   lenet lr=1e-3",
        "[  2:05] t000 started   lenet lr=1e-3",
        "[ 61:01] t000 started   lenet lr=1e-3",
        "[1000:00] t000 started   lenet lr=1e-3",
    ]


def test_each_event_line(trials: list[Trial]) -> None:
    console, stream = make_console(4)
    t0, t1 = TrialOutcome(trials[0]), TrialOutcome(trials[1])
    outcomes = {"t000": t0, "t001": t1}
    t0.status = t1.status = TrialStatus.RUNNING
    console.trial_started(t0)
    t0.metrics = result(2, 0.61234, train_loss=1.23456, images_per_s=1234.4)
    console.trial_result(t0, outcomes)
    console.trial_retrying(t0, "Traceback ...\n  File x\nRuntimeError: worker died\n", 1, 2)
    t0.failures = 1
    console.trial_started(t0)  # the start after a failure: the retry line said it
    console.trial_resumed(t0, 2)
    t0.status = TrialStatus.FINISHED
    t0.metrics = result(3, 0.7, best_test_acc=0.75, best_epoch=2)
    console.trial_done(t0, outcomes)
    t1.status, t1.error = TrialStatus.FAILED, "Traceback ...\nValueError: boom\n"
    console.trial_done(t1, outcomes)
    assert events(stream) == [
        "t000 started   lenet lr=1e-3",
        "t000 epoch 2/3  test_acc 0.6123  train_loss 1.2346  1234 img/s   "
        "| 0/4 done, 2 running, best test_acc 0.6123 (t000)",
        "t000 retrying  failure 1 of 2 allowed: RuntimeError: worker died",
        "t000 resumed   from its epoch-2 checkpoint",
        "t000 finished  best test_acc 0.7500 at epoch 2",
        "1/4 done, 1 running, best test_acc 0.7500 (t000)",
        "t001 FAILED    ValueError: boom",
        "2/4 done, 0 running, best test_acc 0.7500 (t000)",
    ]


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ("stopped", "t000 stopped   best test_acc 0.6000 at epoch 3"),
        ("early_stopped", "t000 early_stopped best test_acc 0.6000 at epoch 3"),
        ("diverged", "t000 diverged  best test_acc 0.6000 at epoch 3"),
    ],
)
def test_the_done_line_of_each_ending(trials: list[Trial], status: str, line: str) -> None:
    console, stream = make_console(1)
    out = outcome(trials[0], status, 0.6)
    console.trial_done(out, {"t000": out})
    assert events(stream)[0] == line


def test_lines_without_a_reason_or_a_result(trials: list[Trial]) -> None:
    console, stream = make_console(1)
    out = TrialOutcome(trials[0], status=TrialStatus.FAILED, error="")
    console.trial_retrying(out, "  \n", 1, 2)
    console.trial_done(out, {"t000": out})
    stopped = TrialOutcome(trials[0], status=TrialStatus.STOPPED)
    console.trial_done(stopped, {"t000": stopped})
    console.trial_retrying(out, "RuntimeError: " + "x" * 300, 2, 2)
    out.error = "ValueError: " + "y" * 300
    console.trial_done(out, {"t000": out})
    lines = events(stream)
    assert lines[:3] == [
        "t000 retrying  failure 1 of 2 allowed: unknown error",
        "t000 FAILED    unknown error",
        "1/1 done, 0 running",
    ]
    assert lines[3].rstrip() == "t000 stopped"  # no result, no best
    assert lines[4] == "1/1 done, 0 running"
    reason = "RuntimeError: " + "x" * 300
    assert lines[5] == "t000 retrying  failure 2 of 2 allowed: " + reason[:160]
    assert lines[6] == "t000 FAILED    " + ("ValueError: " + "y" * 300)[:200]


def test_counts_and_the_best_so_far_skip_failed_diverged_and_killed() -> None:
    more = make_trials(
        sweep={"studies": [{"axes": {"train.optimizer.lr": [1e-1, 2e-1, 3e-1, 4e-1, 5e-1, 6e-1]}}]}
    )
    statuses = ["finished", "failed", "diverged", "killed", "running", "pending"]
    # The better numbers belong to trials that may not be best.
    bests = [0.80, 0.99, 0.95, 0.97, 0.75, None]
    outcomes = {t.trial_id: outcome(t, s, b) for t, s, b in zip(more, statuses, bests, strict=True)}
    console, stream = make_console(len(more))
    console.trial_done(outcomes["t000"], outcomes)
    assert events(stream)[-1] == "4/6 done, 1 running, best test_acc 0.8000 (t000)"
    # A running trial can be the best so far.
    outcomes["t004"].metrics = result(2, 0.85)
    console.trial_result(outcomes["t004"], outcomes)
    assert events(stream)[-1].endswith("| 4/6 done, 1 running, best test_acc 0.8500 (t004)")
    # Only failed, diverged and killed trials with numbers: no best at all.
    del outcomes["t000"], outcomes["t004"]
    console.trial_done(outcomes["t001"], outcomes)
    assert events(stream)[-1] == "3/6 done, 0 running"


def test_the_best_so_far_follows_the_sweeps_metric_and_goal(trials: list[Trial]) -> None:
    console, stream = make_console(4)
    console.metric, console.goal = "test_loss", "min"
    a = outcome(trials[0], "finished", 0.9, best_test_loss=0.40)
    b = outcome(trials[1], "finished", 0.5, best_test_loss=0.25)
    c = outcome(trials[2], "diverged", 0.1, best_test_loss=0.01)
    nan = float("nan")  # a value that is not finite ranks last
    d = outcome(trials[3], "stopped", 0.5, best_test_loss=nan, test_loss=nan)
    outcomes = {o.trial.trial_id: o for o in (a, b, c, d)}
    console.trial_done(a, outcomes)
    assert events(stream)[-1] == "4/4 done, 0 running, best test_loss 0.2500 (t001)"


def test_quiet_prints_no_event_line(trials: list[Trial], capsys: pytest.CaptureFixture) -> None:
    console, stream = make_console(4, quiet=True)
    out = outcome(trials[0], "finished", 0.5)
    outcomes = {"t000": out}
    console.trial_started(out)
    console.trial_result(out, outcomes)
    console.trial_retrying(out, "RuntimeError: x", 1, 2)
    console.trial_resumed(out, 1)
    console.trial_done(out, outcomes)
    out.status, out.error = TrialStatus.FAILED, "boom"
    console.trial_done(out, outcomes)
    assert stream.getvalue() == ""
    console.say("raysweep: 1 trial finished")  # summaries and hints still show
    console.warn("MLflow at x unreachable")
    assert stream.getvalue() == "raysweep: 1 trial finished\n"
    captured = capsys.readouterr()
    assert captured.err == "raysweep: warning: MLflow at x unreachable\n"
    assert captured.out == ""


# What Tune's error file holds when the process running a trial was killed (Ray 2.60).
LOST = (
    "Failure # 1 (occurred at 2026-12-02_12-15-36)\n"
    "The actor died unexpectedly before finishing this task.\n"
    "\tclass_name: ImplicitFunc\n\tpid: 18747\n"
    "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
    "Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. "
    "Some common causes include: (1) the process was killed by the OOM killer due to high "
    "memory usage, (2) ray stop --force was called, or (3) the worker crashed unexpectedly.\n"
)


def test_a_lost_process_is_one_short_line_saying_what_happens_next(trials: list[Trial]) -> None:
    """Retried: which trial, that its process died, and the failure count against its limit;
    failed: the same, and that no retry is left. Ray's paragraph stays in error.txt."""
    console, stream = make_console(4)
    retried, failed = TrialOutcome(trials[0]), TrialOutcome(trials[2], status=TrialStatus.FAILED)
    console.trial_retrying(retried, LOST, 1, 2)
    failed.error = LOST
    console.trial_done(failed, {"t000": retried, "t002": failed})
    assert events(stream)[:2] == [
        "t000 retrying  failure 1 of 2 allowed: its process died (Ray: worker exit SYSTEM_ERROR)",
        "t002 FAILED    its process died (Ray: worker exit SYSTEM_ERROR); no retry left "
        "(train.max_failures 0)",
    ]


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (LOST, "its process died (Ray: worker exit SYSTEM_ERROR)"),
        (
            "ray.exceptions.ActorDiedError: The actor died because its node has died.",
            "its node died",
        ),
        (
            "The actor died unexpectedly before finishing this task. Task was killed due to the "
            "node running low on memory.",
            "its process was killed: the node ran low on memory",
        ),
        ("Traceback ...\nValueError: boom\n", "ValueError: boom"),
        (
            "RuntimeError: the OOM killer is mentioned, no actor died",
            "RuntimeError: the OOM killer is mentioned, no actor died",
        ),
    ],
)
def test_error_reasons(error: str, said: str) -> None:
    from raysweep.trial_errors import error_reason

    assert error_reason(error) == said
