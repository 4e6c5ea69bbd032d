"""Ray Tune wiring on the driver: start Ray, check storage, plan resources, build the Tuner.

One Tune trial per planned trial; its trainable (`raysweep.trainables.trial_driver`) trains a
one-worker trial in its own process, or follows Ray's Train V2 + Tune interop pattern for
several workers: a `TorchTrainer` whose `TuneReportCallback` forwards every epoch's report to
Tune. Either way the driver-side callbacks (MLflow, console progress) see every epoch.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysweep import faults
from raysweep.config import SweepSpec
from raysweep.errors import UserError
from raysweep.plan import Trial
from raysweep.resources import (
    DRIVER_RESOURCE,
    DRIVER_SLOTS,
    TrialResources,
    autoscaling_capacity,
    concurrency,
    placement_problems,
    resolve,
    torch_threads,
    trial_request,
    with_capacity,
)
from raysweep.trainables import trial_driver

# Defaults for Ray's own settings; a value the user exported wins.
RAY_ENV = {
    # Ray Train V2's report() waits for the controller's poll (2 s by default, DESIGN.md).
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    # Starting a worker group (process, torch import, process group) took 60 s on a loaded
    # 2-core machine; plans are checked for placement first, so waiting longer is safe.
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "300",
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    # Ctrl-C stops the sweep at once (KeyboardInterrupt in `fit`): Tune's own handler would
    # stop the trials "gracefully", marking them TERMINATED, which neither the recorder nor a
    # restored Tune can tell from trials that ended; the state Tune saved last says RUNNING,
    # so `--resume` continues them from their checkpoints.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}
# On a local Ray no node can be preempted: the watcher is one more process per trial.
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def ray_env(local: bool) -> dict[str, str]:
    """The environment raysweep gives Ray's processes: its defaults unless the user set them."""
    defaults = {**RAY_ENV, **(LOCAL_RAY_ENV if local else {})}
    env = {key: os.environ.get(key, value) for key, value in defaults.items()}
    return {**env, **faults.hold_env()}  # fault points hold in trials on any node too


DEFAULT_STORAGE = "~/ray_results"


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


@dataclass
class TrialOutcome:
    """How one trial ended, as the driver saw it."""

    trial: Trial
    status: str = "pending"  # finished | stopped | early_stopped | diverged | failed | killed
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    run_id: str | Future[str] | None = None  # a Future until the writer has created the run
    checkpoint_path: str | None = None
    last_epoch: int = 0
    restarts: int = 0  # times its training went on from a checkpoint (worker retry, --resume)
    failures: int = 0  # failures Tune restarted it after (inline trials; max_failures)
    # Ended in an earlier run of this sweep (MLflow says so); Tune, whose record of it may be
    # seconds older, can start it again on --resume: the recorder then ignores it.
    recorded: bool = False
    started: float | None = None
    ended: float | None = None


def storage_uri(storage: str | None) -> str:
    """An absolute local path or a URI (s3://, gs://, ...), checked writable now."""
    raw = storage or DEFAULT_STORAGE
    if "://" in raw:
        import pyarrow.fs

        try:
            fs, path = pyarrow.fs.FileSystem.from_uri(raw)
            fs.create_dir(path, recursive=True)
        except Exception as exc:  # noqa: BLE001 - any failure here is the user's to fix
            raise UserError(f"--storage {raw}: cannot write there: {exc}") from None
        return raw
    path = Path(raw).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".raysweep-write-test-{uuid.uuid4().hex[:6]}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--storage {raw}: cannot write there ({exc.strerror or exc})") from None
    return str(path)


def init_ray(address: str | None, debug: bool) -> dict[str, float]:
    """Start (or connect to) Ray quietly; returns the cluster's resources.

    `address` (or $RAY_ADDRESS, which cluster.yaml sets on the head node) connects to a running
    cluster; without one, a local Ray is started with the `trial_driver` resource.
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    env = ray_env(local=not address)
    os.environ.update(env)
    kwargs: dict[str, Any] = {
        "log_to_driver": debug,
        "logging_level": logging.INFO if debug else logging.WARNING,
        "runtime_env": {"env_vars": env},
        "ignore_reinit_error": True,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(resources={DRIVER_RESOURCE: DRIVER_SLOTS}, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions here
        if address:
            raise UserError(f"--address {address}: cannot connect to Ray: {exc}") from None
        raise UserError(f"could not start a local Ray instance: {exc}") from None
    if not debug:
        quiet_library_logs()
    live = {k: float(v) for k, v in ray.cluster_resources().items()}
    # An autoscaling cluster is planned at the size it can grow to, not the size it has now.
    return with_capacity(live, autoscaling_capacity()) if address else live


def quiet_library_logs() -> None:
    """Keep Ray's and MLflow's log lines off the terminal; raysweep reports what matters.

    A failed trial's traceback is kept in its MLflow run and summarized by raysweep; Tune
    would also print it, and "Trials did not complete", to stderr. `--debug` shows them.
    """
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    logging.getLogger("ray.train").setLevel(logging.CRITICAL)
    # MLflow warns on every logged model that it cannot find pip's version (no pip in a uv venv).
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    # ...and says "Detected uv project" at INFO on every logged model.
    logging.getLogger("mlflow.utils.uv_utils").setLevel(logging.WARNING)


NETWORK_FILESYSTEMS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "lustre",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "beegfs",
    "gpfs",
    "fuse.sshfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.mountpoint-s3",
    "efs",
)


def filesystem_type(path: str) -> str:
    """The type of the filesystem `path` lives on, from /proc/mounts ('' if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and path.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def check_storage_reach(storage: str) -> None:
    """Refuse a node-local storage path on a cluster whose nodes are on different hosts.

    Checkpoints are written by the node a trial runs on and read back by whichever node
    retries or resumes it; a path on one machine's disk cannot serve another machine.
    """
    import ray

    if "://" in storage:
        return
    hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
    kind = filesystem_type(storage)
    if len(hosts) > 1 and kind not in NETWORK_FILESYSTEMS:
        raise UserError(
            f"--storage {storage}: a local path ({kind or 'unknown'} filesystem) on a cluster "
            f"of {len(hosts)} hosts; a trial retried or resumed on another node could not read "
            "its checkpoints. Use shared storage: --storage s3://bucket/path, gs://..., or a "
            "path on NFS mounted on every node."
        )


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
    run = {
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
