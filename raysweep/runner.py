"""`raysweep run`: check everything, start Ray, run the Tuner, record and summarize the trials.

No trial is started and no MLflow run is created until the sweep file, the datasets, the
storage, the Ray connection and the resource plan have all been checked (Ray starts while the
datasets are checked and MLflow is opened).
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

from raysweep import faults, logfile
from raysweep.config import SweepSpec
from raysweep.errors import UserError
from raysweep.plan import Trial, base_trials, is_adaptive
from raysweep.progress import Console
from raysweep.ray_session import (
    check_storage_reach,
    init_ray,
    storage_uri,
)
from raysweep.records import (
    TAG_EXPERIMENT_DIR,
    TAG_ROLE,
    TAG_SELECTED_STUDIES,
    TAG_STATUS,
    TAG_STORAGE,
    SweepStatus,
    TrialOutcome,
    TrialStatus,
)
from raysweep.resources import TrialResources, request_params
from raysweep.searchspace import tpe_study
from raysweep.sweep import (
    RunOptions,
    build_tuner,
    experiment_dir_name,
    local_ray_for,
    plan_resources,
    restore_tuner,
)
from raysweep.tracking import MlflowWriter, resolve_tracking_uri


def check_datasets(trials: list[Trial]) -> dict[str, Any]:
    """Load (and cache) every distinct dataset once, so a missing one fails before anything runs.

    Returns each dataset by its spec's JSON."""
    from raysweep.data import load_dataset

    found: dict[str, Any] = {}
    for trial in trials:
        key = trial.config.dataset.model_dump_json()
        if key not in found:
            found[key] = load_dataset(trial.config.dataset)
    return found


def model_errors(trials: list[Trial], datasets: dict[str, Any]) -> dict[str, str]:
    """Trial id -> why its model cannot be built, for trials whose model raises when built.

    Such a trial fails at once, recorded in MLflow, instead of being started and retried: no
    retry can fix a value the factory refuses. Built on the meta device (no memory, no time).
    """
    import torch

    from raysweep.train import build_model

    errors: dict[str, str] = {}
    seen: dict[str, str | None] = {}
    for trial in trials:
        dataset = trial.config.dataset.model_dump_json()
        key = dataset + trial.config.model.model_dump_json()
        if key not in seen:
            try:
                with torch.device("meta"):
                    build_model(trial.config, datasets[dataset])
                seen[key] = None
            except Exception as exc:  # noqa: BLE001 - whatever the factory raises fails the trial
                seen[key] = f"the model cannot be built: {type(exc).__name__}: {exc}"
        if seen[key] is not None:
            errors[trial.trial_id] = seen[key]
    return errors


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _collector_paused(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """`run` with Python's cyclic garbage collector off until it turns it back on itself (or
    ends: a set-up that fails leaves it on again).

    Setting up imports torch, MLflow and Ray: millions of objects that live as long as the
    process, which each pass of the collector walks again (0.1-0.4 s a pass, seconds in all on
    2 cores). None runs until the trials start; then what setting up made is set aside for
    good (`gc.freeze`)."""

    @functools.wraps(run)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            gc.enable()  # (already on, unless setting up failed)

    return paused


@_collector_paused
def run_sweep(
    spec: SweepSpec,
    trials: list[Trial],
    sweep_text: str,
    options: RunOptions,
    console: Console,
) -> dict[str, TrialOutcome]:
    """Run every trial; returns their outcomes (also recorded in MLflow)."""
    # Other libraries' messages to a file from here on (until the process ends): torch's,
    # MLflow's while it opens its store, Ray's as it starts.
    library_log = logfile.start(spec.name, options.debug)
    checked = base_trials(spec, trials)  # an adaptive sweep's trials are made as it runs
    storage = storage_uri(options.storage)
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    # Ray's start (seconds, mostly waiting on its processes) overlaps checking the datasets and
    # models and opening MLflow (imports, database); no run is created yet.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="setup") as pool:
        checking = pool.submit(_check_trials, spec, checked)
        opening = pool.submit(
            MlflowWriter,
            tracking_uri,
            spec.name,
            console.warn,
            lambda text: console.say(f"raysweep: {text}"),
        )
        if any(t.config.train.log_model for t in checked):
            threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
        local = local_ray_for(spec, options.studies)
        cluster = init_ray(options.address, options.debug, local)
        unbuildable = checking.result()
        check_storage_reach(storage)
        requests, parallel = plan_resources(spec, cluster, options.max_concurrent, options.studies)
        writer = opening.result()
    record = _parent_record(spec, trials, sweep_text, requests)
    if options.resume:
        from raysweep.resume import find_previous, restore_outcomes, restore_searched

        previous = find_previous(writer, spec.name, options.studies)
        parent_id, experiment_dir = previous.parent_id, previous.experiment_dir
        storage = storage_uri(options.storage or previous.storage)
        if is_adaptive(spec):
            from raysweep.search import set_replay

            outcomes, points = restore_searched(writer, parent_id, spec)
            set_replay(points)
        else:
            outcomes = restore_outcomes(writer, parent_id, trials, spec.sweep.metric)
        _reopen_parent(writer, parent_id, record)
    else:
        experiment_dir = experiment_dir_name(spec)
        parent_id = _start_parent(writer, spec, record, storage, experiment_dir, options.studies)
        outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
    console.sweep_started(spec, trials, requests, parallel, tracking_uri, writer.experiment_id)
    console.say(f"raysweep: other libraries' messages (Ray, MLflow, warnings): {library_log.path}")
    from raysweep.recorder import SweepRecorder

    recorder = SweepRecorder(writer, parent_id, outcomes, console, f"{storage}/{experiment_dir}")
    for trial_id, error in unbuildable.items():
        recorder.record_ended(outcomes[trial_id], {}, error=error)
    runnable = [t for t in trials if t.trial_id not in unbuildable]
    tuner = None
    if options.resume:
        tuner = restore_tuner(f"{storage}/{experiment_dir}", console.warn)
    if tuner is None and (runnable or is_adaptive(spec)):  # new, or died before Tune saved
        tuner = build_tuner(
            spec,
            runnable or checked,  # (what a tpe Tuner reads of its base: retries, epochs)
            parallel,
            storage,
            experiment_dir,
            [recorder],
            cluster,
        )
    gc.freeze()
    gc.enable()
    # Ctrl-C raises KeyboardInterrupt here, even where the shell that started raysweep made
    # it ignore SIGINT (a job started with `&`): Python then installs no handler of its own.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        faults.hold("before_trials")
        if tuner is not None:
            tuner.fit()
    except KeyboardInterrupt:
        pass  # Ctrl-C: the trials that did not end are marked killed below
    finally:
        signal.signal(signal.SIGINT, previous)
        # Nothing below needs Ray: its processes stop (seconds of waiting on them) while the
        # last trials' models are logged and the report is built.
        tuner = None  # Tune's objects hold Ray's: freed now, while Ray runs (`_stop_ray`)
        ray_stopped = _stop_ray()
        interrupted = _mark_killed(writer, outcomes)
        writer.wait()  # every trial's data is in MLflow before the report reads it
        for out in outcomes.values():
            if isinstance(out.run_id, Future):
                out.run_id = out.run_id.result()
        _log_report(writer, tracking_uri, spec, parent_id, console)
        ray_stopped()
        faults.hold("report")
        _finish_parent(writer, parent_id, spec, outcomes, interrupted)
        errors = writer.flush()
        for err in errors:
            console.warn(err if err.startswith("MLflow at ") else f"MLflow: {err}")
    return outcomes


def end_process(code: Any) -> NoReturn:
    """End the `raysweep run` process with `code` once its output is flushed and the exit
    handlers have run (logging's, MLflow's, Ray's: Ray is stopped and every MLflow write done
    by then), without Python's teardown: its last garbage collection walks every object torch
    (torch.export), MLflow and Ray made, seconds on 2 cores, in a process ending anyway."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing more can be said
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code if isinstance(code, int) else int(code is not None))


def _stop_ray() -> Callable[[], None]:
    """Disconnect from Ray, stopping the local Ray this process started, in the background;
    returns the function that waits until that is done.

    While Ray stops, freeing one of its objects (an actor handle, an object ref) on any thread
    ends the process: its core worker is called after its shutdown began and quick-exits
    ("The core worker has already been shutdown ... The process will exit"), with trials and
    the parent run left unrecorded. The cyclic garbage collector frees such objects on
    whichever thread it runs (the garbage of Tune's finished controller holds them), so the
    garbage is collected here, while Ray runs, and the collector stays off until Ray stopped."""
    import ray

    gc.collect()
    gc.disable()
    thread = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
    thread.start()

    def stopped() -> None:
        thread.join()
        gc.enable()

    return stopped


def _warm_up() -> None:
    """`raysweep.artifacts.warm_up`, imported on this thread (it imports torch), not the main
    one, which starts Ray meanwhile."""
    from raysweep.artifacts import warm_up

    warm_up()


def _check_trials(spec: SweepSpec, checked: list[Trial]) -> dict[str, str]:
    """Every dataset loaded (UserError if one cannot be) and the trials whose model cannot be
    built (`model_errors`); an adaptive sweep with such a model is refused (UserError)."""
    unbuildable = model_errors(checked, check_datasets(checked))
    if is_adaptive(spec) and unbuildable:
        raise UserError(f"{spec.name}: {next(iter(unbuildable.values()))}")
    return unbuildable


def _mark_killed(writer: MlflowWriter, outcomes: dict[str, TrialOutcome]) -> bool:
    """Mark the trials that did not end KILLED (Ctrl-C, or Tune stopped); True if any."""
    killed = False
    for out in outcomes.values():
        if not out.status.ended:
            killed = True
            out.status = TrialStatus.KILLED
            if out.run_id:
                writer.submit(writer.log_final, out.run_id, {}, {TAG_STATUS: out.status})
                writer.submit(writer.end, out.run_id, "KILLED")
    return killed


@dataclass(frozen=True)
class ParentRecord:
    """What the sweep's parent run records besides its tags: params, and files (name: text)."""

    params: dict[str, Any]
    files: dict[str, str]


def _parent_record(
    spec: SweepSpec, trials: list[Trial], sweep_text: str, requests: dict[str, TrialResources]
) -> ParentRecord:
    planned: Any = [t.to_json() for t in trials]
    count = len(trials)
    if is_adaptive(spec):  # the trials are made as results arrive: the plan is the space
        study = tpe_study(spec)
        planned = {"mode": "tpe", "samples": study.samples, "axes": study.axes, "set": study.set}
        count = study.samples
    return ParentRecord(
        params={
            "trials": count,
            "modes": ",".join(sorted({s.mode for s in spec.sweep.studies})),
            "scheduler": spec.sweep.scheduler.name,
            "metric": spec.sweep.metric,
            "goal": spec.sweep.goal,
            **request_params(requests),
        },
        files={"sweep.yaml": sweep_text, "plan.json": json.dumps(planned, indent=1)},
    )


def _start_parent(
    writer: MlflowWriter,
    spec: SweepSpec,
    record: ParentRecord,
    storage: str,
    experiment_dir: str,
    studies: tuple[str, ...],
) -> str:
    # What `--resume` needs is in the tags, set as the run is created: a crash before its
    # params and files are logged (`_reopen_parent` logs them then) still leaves a resumable run.
    tags = {TAG_ROLE: "sweep", TAG_EXPERIMENT_DIR: experiment_dir, TAG_STORAGE: storage}
    if studies:  # `--study`: what `--resume` matches on
        tags[TAG_SELECTED_STUDIES] = ",".join(studies)
    parent_id = writer.start_parent(f"{spec.name} sweep", tags=tags, params=record.params)
    for name, text in record.files.items():
        writer.submit(writer.log_text, parent_id, text, name)
    return parent_id


def _reopen_parent(writer: MlflowWriter, parent_id: str, record: ParentRecord) -> None:
    """The resumed sweep's parent RUNNING again, with what a crash right after its creation
    left out (params, files)."""
    tags = {TAG_STATUS: SweepStatus.RUNNING}
    writer.submit(writer.reopen, parent_id, tags, record.params)
    writer.submit(writer.log_missing_texts, parent_id, record.files)


def _log_report(
    writer: MlflowWriter, tracking_uri: str, spec: SweepSpec, parent_id: str, console: Console
) -> None:
    """The sweep's summary tables and comparison plots, built from MLflow, logged on the parent
    run through the sweep's one writer."""
    import tempfile

    try:
        from raysweep.report.build import build_report
        from raysweep.report.publish import stage

        with tempfile.TemporaryDirectory() as tmp:
            # Part of its figures drawn in a forked process: the trials' cores are free now.
            _, report, _ = build_report(
                tracking_uri, spec.name, Path(tmp) / "report", parent_id, fork=True
            )
            files = stage(report.files, Path(tmp) / "logged")
            writer.submit(writer.log_dir, parent_id, str(files))
            writer.wait()  # the writer reads the files before their directory goes
    except Exception as exc:  # noqa: BLE001 - the sweep's results are safe; the report can wait
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        console.warn(
            f"the sweep report was not logged ({first}); `raysweep report {spec.name}` "
            "builds it from MLflow"
        )


def _finish_parent(
    writer: MlflowWriter,
    parent_id: str,
    spec: SweepSpec,
    outcomes: dict[str, TrialOutcome],
    interrupted: bool,
) -> None:
    from raysweep.summary import best_outcome

    best = best_outcome(list(outcomes.values()), spec.sweep.metric, spec.sweep.goal)
    final: dict[str, float] = {}
    tags = {TAG_STATUS: SweepStatus.INTERRUPTED if interrupted else SweepStatus.DONE}
    if best is not None and best.run_id:
        tags["raysweep.best_run_id"] = best.run_id
        tags["raysweep.best_trial"] = best.trial.trial_id
        final[f"best_{spec.sweep.metric}"] = float(
            best.metrics.get(f"best_{spec.sweep.metric}", best.metrics.get(spec.sweep.metric, 0.0))
        )
        writer.submit(writer.log_final, best.run_id, {}, {"raysweep.best": "true"})
    writer.submit(writer.log_final, parent_id, final, tags)
    failed = any(o.status in (TrialStatus.FAILED, TrialStatus.KILLED) for o in outcomes.values())
    status = "KILLED" if interrupted else ("FAILED" if failed else "FINISHED")
    writer.submit(writer.end, parent_id, status)
