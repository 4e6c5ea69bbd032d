"""Ray Tune wiring on the driver: plan resources, build (or restore) the Tuner.

One Tune trial per planned trial; its trainable (`raysweep.trainables.trial_driver`) trains a
one-worker trial in its own process, or follows Ray's Train V2 + Tune interop pattern for
several workers: a `TorchTrainer` whose controller forwards every epoch's report to the
trial's thread, which reports it to Tune (`raysweep.train_reports`). Either way the driver-side
callbacks (MLflow, console progress) see every epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raysweep.config import SweepSpec
from raysweep.errors import UserError
from raysweep.plan import Trial, is_adaptive, study_requests
from raysweep.ray_session import LocalRay, local_ray
from raysweep.records import RunSettings
from raysweep.resources import (
    DRIVER_RESOURCE,
    TrialResources,
    resolve,
    study_problems,
    sweep_concurrency,
)
from raysweep.searchspace import tpe_study
from raysweep.trainables import trial_driver, tune_request


@dataclass
class RunOptions:
    """How `raysweep run` was asked to run."""

    tracking_uri: str | None = None
    storage: str | None = None
    address: str | None = None
    max_concurrent: int | None = None
    resume: bool = False
    debug: bool = False
    quiet: bool = False
    studies: tuple[str, ...] = ()  # `--study`: only these studies' trials (empty: all)


def inline_retries(trials: list[Trial]) -> int:
    """How often Tune may restart a failed trial: the sweep's largest `train.max_failures`
    (Tune has one FailureConfig for the whole sweep; the recorder holds each trial to its own)."""
    return max(t.config.train.max_failures for t in trials)


def plan_resources(
    spec: SweepSpec,
    cluster: dict[str, float],
    max_concurrent: int | None,
    studies: tuple[str, ...] = (),
) -> tuple[dict[str, TrialResources], int]:
    """Each study's resolved request (the `studies` selected, or all) and how many trials run
    at once; UserError, naming the study when studies differ, if one can never be placed."""
    requests = {
        name: resolve(request, cluster) for name, request in study_requests(spec, studies).items()
    }
    problems = study_problems(requests, cluster)
    if problems:
        where = "resources" if len(set(requests.values())) == 1 else "the study's resources"
        raise UserError(
            "; ".join(problems)
            + f": lower {where}.workers_per_trial / cpus_per_worker / gpus_per_worker"
        )
    limit = max_concurrent or spec.resources.max_concurrent
    return requests, sweep_concurrency(requests.values(), cluster, limit)


def local_ray_for(spec: SweepSpec, studies: tuple[str, ...] = ()) -> LocalRay:
    """What a local Ray started for this sweep needs (whether every trial trains inline)."""
    return local_ray(all(r.inline for r in study_requests(spec, studies).values()))


def run_settings(
    storage: str, cluster: dict[str, float], placement_timeout_s: float | None = None
) -> RunSettings:
    """What every trial gets besides its own config and resources."""
    facts = {k: v for k, v in cluster.items() if k in ("CPU", "GPU", DRIVER_RESOURCE)}
    return {"storage": storage, "cluster": facts, "placement_timeout_s": placement_timeout_s}


def build_tuner(
    spec: SweepSpec,
    trials: list[Trial],
    parallel: int,
    storage: str,
    experiment_dir: str,
    callbacks: list[Any],
    cluster: dict[str, float],
) -> Any:
    """A Tuner over the planned trials (a grid over their ids: the plan is already expanded)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from raysweep.placement import PlacementGuard
    from raysweep.recorder import TuneProgressOff
    from raysweep.restored_checkpoints import RestoredCheckpoints

    sched = spec.sweep.scheduler
    if sched.name == "asha":
        scheduler: Any = ASHAScheduler(
            time_attr="epoch",
            metric=spec.sweep.metric,
            mode=spec.sweep.goal,
            max_t=sched.max_epochs or max(t.config.train.epochs for t in trials),  # tpe: the base
            grace_period=sched.grace_epochs,
            reduction_factor=sched.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    run = run_settings(storage, cluster, spec.resources.placement_timeout_s)
    search, samples, space = None, 1, {"trial": tune.grid_search([t.to_json() for t in trials])}
    if is_adaptive(spec):  # the trials are chosen as results arrive (raysweep.search)
        from raysweep.search import TpeSearcher

        search, samples, space = TpeSearcher(spec, spec.name), tpe_study(spec).samples, {}
    return tune.Tuner(
        # Each trial asks for its own resources (its study's): Tune calls `tune_request` on
        # the trial's config.
        tune.with_resources(trial_driver, tune_request),
        param_space={**space, "run": run},
        tune_config=tune.TuneConfig(
            search_alg=search,
            num_samples=samples,
            # A trial waiting too long for resources no node has fails (raysweep.placement).
            scheduler=PlacementGuard(scheduler),
            max_concurrent_trials=parallel,
            # Inline trials reuse their actor (one process start per concurrent slot). Not
            # worker-group trials: with it, after ASHA stopped such a trial, a pending one was
            # never started (Ray 2.60; seen in tests/test_e2e.py when every trial was one).
            # So only when every trial is inline (Tune reuses an actor only for a trial of
            # the same request).
            reuse_actors=all(t.resources.inline for t in trials),
            trial_name_creator=lambda t: t.config["trial"]["trial_id"],
            trial_dirname_creator=lambda t: t.config["trial"]["trial_id"],
        ),
        run_config=tune.RunConfig(
            name=experiment_dir,
            storage_path=storage,
            # Tune's own record of each result (result.json), the only one of its default
            # loggers kept (ray_session.RAY_ENV). RestoredCheckpoints: for `--resume`.
            # TuneProgressOff: the console is raysweep's (Tune's own printer is silenced).
            callbacks=[*callbacks, JsonLoggerCallback(), RestoredCheckpoints(), TuneProgressOff()],
            verbose=0,
            # Tune restarts a trial whose process died or raised (from its newest checkpoint):
            # an inline trial, or the actor driving a worker group (whose workers Ray Train
            # retries itself). Each trial gets its own train.max_failures (SweepRecorder).
            failure_config=tune.FailureConfig(max_failures=inline_retries(trials)),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def restore_tuner(path: str, warn: Callable[[str], None]) -> Any:
    """The Tuner of an interrupted sweep: finished trials stay, unfinished ones continue.

    None if Tune has no experiment state there yet (the driver died before any trial started;
    the Tuner's own pickle, written when it is built, is not enough to restore from), or if the
    state it saved last was cut short (raysweep.tune_state; `warn` says so): a new Tuner then
    runs the trials again, each from what its directory holds."""
    import pyarrow.fs
    from ray import tune

    from raysweep.storage import filesystem
    from raysweep.tune_state import unreadable_state

    if not tune.Tuner.can_restore(path):
        return None
    fs, root = filesystem(path)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    if not any(e.base_name.startswith("experiment_state") for e in entries):
        return None
    cut = unreadable_state(fs, root)
    if cut is not None:
        warn(
            f"Tune's saved state {cut} is cut short (the driver died while Tune wrote it); "
            "the trials go on from their checkpoints instead"
        )
        return None
    return tune.Tuner.restore(
        path,
        trainable=tune.with_resources(trial_driver, tune_request),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def experiment_dir_name(spec: SweepSpec) -> str:
    """A fresh Tune experiment directory name for this sweep: `<name>-<UTC time>`."""
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
