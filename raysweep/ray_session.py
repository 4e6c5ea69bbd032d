"""Starting (or joining) Ray on the driver, and checking where checkpoints go.

`init_ray` starts a local Ray with the `trial_driver` resource, or connects to a cluster, with
raysweep's defaults for Ray's own settings (a value the user exported wins) and Ray's logs
kept off the terminal (in `raysweep.logfile`'s file when one is open); a local Ray starts only
what the sweep needs (`LocalRay`); `storage_uri` and `check_storage_reach` refuse a
checkpoint location that cannot serve every node. No Ray import at module level
(`raysweep plan --address` uses it).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep import faults
from raysweep.errors import UserError
from raysweep.resources import DRIVER_RESOURCE, DRIVER_SLOTS, autoscaling_capacity, with_capacity

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
    # Tune's CSV and TensorBoard loggers write (and the latter flushes) every result on the
    # driver; nothing reads them. Its JSON logger (result.json) is added back by the Tuner.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}
# On a local Ray no node can be preempted: the watcher is one more process per trial. Nor does
# anything scrape Ray Train's metrics there (no Prometheus): their callbacks cost a
# worker-group trial ~2 CPU-s (measured: 2 one-worker TorchTrainer trials, 52-55 -> 49.5 CPU-s).
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_METRICS_ENABLED": "0"}


@dataclass(frozen=True)
class LocalRay:
    """What a local Ray starts besides its core (a cluster was set up by whoever started it)."""

    # The dashboard, and with it Ray's state API, which a worker-group trial's placement-group
    # cleaner asks whether its controller still lives. A sweep of inline trials needs neither
    # (RAYSWEEP_RAY_DASHBOARD=1 starts it anyway). Without it no dashboard process starts at
    # all, nor Ray's monitors (`lean_head`).
    dashboard: bool = True
    # An idle worker per CPU, started as the driver connects (Ray's
    # prestart_worker_first_driver): processes starting while the driver does, competing with
    # it for the cores. An inline sweep measured no faster with them (benchmarks/vs_tune.py).
    prestart_workers: bool = True


def local_ray(inline_only: bool) -> LocalRay:
    """How to start a local Ray for a sweep whose trials are all inline (or not)."""
    dashboard = not inline_only or os.environ.get("RAYSWEEP_RAY_DASHBOARD") == "1"
    return LocalRay(dashboard=dashboard, prestart_workers=not inline_only)


@contextmanager
def lean_head(log_monitor: bool) -> Iterator[None]:
    """A local Ray head started, by the `ray.init` inside, with no process an inline sweep
    does not use: no dashboard, no autoscaler monitor, and no log monitor unless `log_monitor`
    (it only streams the workers' output to a driver started with `log_to_driver`).

    `include_dashboard=False` still starts `dashboard.py` (its usage-stats module only), and
    `ray.init` waits for it to register before it starts the raylet; with the two monitors
    that is three Python processes importing Ray, ~2.5 CPU-s of a 2-core machine's start. Ray
    goes on without a dashboard that failed to start (`start_api_server` returning no URL and
    no process, what it returns here), and its shutdown skips process types it never
    started. Where Ray's private functions are not there (another Ray), nothing changes."""
    try:
        from ray._private import services
        from ray._private.node import Node
    except ImportError:  # pragma: no cover - another Ray starts as it does
        yield
        return
    stand_ins: dict[tuple[Any, str], Any] = {
        (services, "start_api_server"): lambda *args, **kwargs: (None, None),
        (Node, "start_monitor"): lambda self: None,
    }
    if not log_monitor:
        stand_ins[(Node, "start_log_monitor")] = lambda self: None
    originals = {key: getattr(*key) for key in stand_ins if hasattr(*key)}
    for (owner, name), _ in originals.items():
        setattr(owner, name, stand_ins[(owner, name)])
    try:
        yield
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)


def ray_env(local: bool) -> dict[str, str]:
    """The environment raysweep gives Ray's processes: its defaults unless the user set them."""
    defaults = {**RAY_ENV, **(LOCAL_RAY_ENV if local else {})}
    env = {key: os.environ.get(key, value) for key, value in defaults.items()}
    return {**env, **faults.hold_env()}  # fault points hold in trials on any node too


DEFAULT_STORAGE = "~/ray_results"


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


def user_files_env() -> dict[str, Any]:
    """Runtime-env entries shipping the user's model/dataset files to every node of a cluster.

    The files referenced by the sweep (``model.name: "nets.py:TinyNet"``) were found when it was
    validated; on a local Ray every process reads them where they are.
    """
    from raysweep.user_code import runtime_env

    return runtime_env()


def init_ray(address: str | None, debug: bool, local: LocalRay | None = None) -> dict[str, float]:
    """Start (or connect to) Ray quietly; returns the cluster's resources.

    `address` (or $RAY_ADDRESS, which cluster.yaml sets on the head node) connects to a running
    cluster; without one, a local Ray is started with the `trial_driver` resource, and with
    what `local` asks for (default: everything Ray starts).
    """
    import ray

    from raysweep import logfile

    log = logfile.current()
    if log is not None:
        log.adopt()  # importing Ray gave its logger a terminal handler of its own
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = ray_env(local=not address)
    local = local or LocalRay()
    if not address and not local.prestart_workers:
        key = "RAY_prestart_worker_first_driver"  # read by the raylet this process starts
        env[key] = os.environ.get(key, "0")
    os.environ.update(env)
    kwargs: dict[str, Any] = {
        "log_to_driver": debug,
        # Ray's start-up WARNINGs (token authentication is off, ...) are not the user's to act
        # on: with `raysweep run`'s log file (`raysweep.logfile`) they go there, Ray's logger
        # left without a terminal handler of its own; elsewhere only ERRORs show. `--debug`
        # shows them.
        "configure_logging": log is None,
        "logging_level": logging.INFO if debug else logging.ERROR,
        "runtime_env": {"env_vars": env, **(user_files_env() if address else {})},
        "ignore_reinit_error": True,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
        elif local.dashboard:
            ray.init(resources={DRIVER_RESOURCE: DRIVER_SLOTS}, **kwargs)
        else:
            with lean_head(log_monitor=debug):
                ray.init(
                    resources={DRIVER_RESOURCE: DRIVER_SLOTS}, include_dashboard=False, **kwargs
                )
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions here
        if address:
            raise UserError(f"--address {address}: cannot connect to Ray: {exc}") from None
        raise UserError(f"could not start a local Ray instance: {exc}") from None
    if log is not None:
        log.route_ray_errors()  # "A worker died ..." to the log: raysweep says it in one line
    elif not debug:
        quiet_library_logs()
    live = {k: float(v) for k, v in ray.cluster_resources().items()}
    # An autoscaling cluster is planned at the size it can grow to, not the size it has now.
    return with_capacity(live, autoscaling_capacity()) if address else live


def quiet_library_logs() -> None:
    """Keep Ray's and MLflow's log lines off the terminal where no log file takes them
    (`raysweep plan --address`; `raysweep run` has its own: `raysweep.logfile`).

    A failed trial's traceback is kept in its MLflow run and summarized by raysweep; Tune
    would also print it, and "Trials did not complete", to stderr. `--debug` shows them.
    """
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    logging.getLogger("ray.train").setLevel(logging.CRITICAL)
    # MLflow warns on every logged model that it cannot find pip's version (no pip in a uv venv).
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    # ...and says "Detected uv project" at INFO on every logged model.
    logging.getLogger("mlflow.utils.uv_utils").setLevel(logging.WARNING)
    # ...and "Creating initial MLflow database tables..." when it makes a new SQLite store.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


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
