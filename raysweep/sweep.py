"""Ray Tune wiring on the driver: plan resources, build (or restore) the Tuner.

One Tune trial per planned trial; its trainable (`raysweep.trainables.trial_driver`) trains a
one-worker trial in its own process, or follows Ray's Train V2 + Tune interop pattern for
several workers: a `TorchTrainer` whose `TuneReportCallback` forwards every epoch's report to
Tune. Either way the driver-side callbacks (MLflow, console progress) see every epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from raysweep.config import SweepSpec
from raysweep.errors import UserError
from raysweep.plan import Trial
from raysweep.records import RunSettings
from raysweep.resources import (
    TrialResources,
    concurrency,
    placement_problems,
    resolve,
    torch_threads,
    trial_request,
)
from raysweep.trainables import trial_driver


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


def inline_retries(trials: list[Trial]) -> int:
    """How often Tune may restart a failed trial: the sweep's largest `train.max_failures`
    (Tune has one FailureConfig for the whole sweep; the recorder holds each trial to its own)."""
    return max(t.config.train.max_failures for t in trials)


def plan_resources(
    spec: SweepSpec, cluster: dict[str, float], max_concurrent: int | None
) -> tuple[TrialResources, int]:
    """Resolve per-trial resources and concurrency; UserError if a trial can never be placed."""
    req = resolve(spec.resources, cluster)
    problems = placement_problems(req, cluster)
    if problems:
        raise UserError(
            "; ".join(problems)
            + ": lower resources.workers_per_trial / cpus_per_worker / gpus_per_worker"
        )
    limit = max_concurrent or spec.resources.max_concurrent
    return req, concurrency(req, cluster, limit)


def build_tuner(
    spec: SweepSpec,
    trials: list[Trial],
    req: TrialResources,
    parallel: int,
    storage: str,
    experiment_dir: str,
    callbacks: list[Any],
    cluster: dict[str, float],
) -> Any:
    """A Tuner over the planned trials (a grid over their ids: the plan is already expanded)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    sched = spec.sweep.scheduler
    if sched.name == "asha":
        scheduler: Any = ASHAScheduler(
            time_attr="epoch",
            metric=spec.sweep.metric,
            mode=spec.sweep.goal,
            max_t=sched.max_epochs or max(t.config.train.epochs for t in trials),
            grace_period=sched.grace_epochs,
            reduction_factor=sched.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    run: RunSettings = {
        "storage": storage,
        "threads": torch_threads(req),
        "inline": req.inline,
        "resources": {
            "workers": req.workers,
            "gpus_per_worker": req.gpus_per_worker,
            "per_worker": req.per_worker,
        },
    }
    return tune.Tuner(
        tune.with_resources(trial_driver, trial_request(req, cluster)),
        param_space={"trial": tune.grid_search([t.to_json() for t in trials]), "run": run},
        tune_config=tune.TuneConfig(
            num_samples=1,
            scheduler=scheduler,
            max_concurrent_trials=parallel,
            # Inline trials reuse their actor (one process start per concurrent slot). Not
            # worker-group trials: with it, after ASHA stopped such a trial, a pending one was
            # never started (Ray 2.60; seen in tests/test_e2e.py when every trial was one).
            reuse_actors=req.inline,
            trial_name_creator=lambda t: t.config["trial"]["trial_id"],
            trial_dirname_creator=lambda t: t.config["trial"]["trial_id"],
        ),
        run_config=tune.RunConfig(
            name=experiment_dir,
            storage_path=storage,
            callbacks=callbacks,
            verbose=0,
            # Tune restarts a trial whose process died or raised (from its newest checkpoint):
            # an inline trial, or the actor driving a worker group (whose workers Ray Train
            # retries itself). Each trial gets its own train.max_failures (SweepRecorder).
            failure_config=tune.FailureConfig(max_failures=inline_retries(trials)),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def restore_tuner(path: str, req: TrialResources, cluster: dict[str, float]) -> Any:
    """The Tuner of an interrupted sweep: finished trials stay, unfinished ones continue.

    None if Tune has no experiment state there yet: the driver died before any trial started
    (the Tuner's own pickle, written when it is built, is not enough to restore from)."""
    import pyarrow.fs
    from ray import tune

    from raysweep.storage import filesystem

    if not tune.Tuner.can_restore(path):
        return None
    fs, root = filesystem(path)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    if not any(e.base_name.startswith("experiment_state") for e in entries):
        return None
    return tune.Tuner.restore(
        path,
        trainable=tune.with_resources(trial_driver, trial_request(req, cluster)),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def experiment_dir_name(spec: SweepSpec) -> str:
    """A fresh Tune experiment directory name for this sweep: `<name>-<UTC time>`."""
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
