"""A real two-node Ray cluster on this one machine, the way cluster.yaml builds one.

Two `ray start` processes (a head holding the `trial_driver` resource and 1 CPU, a second node
with 1 CPU and no `trial_driver`), each with its own temp dir and ports, token authentication
on (a token of their own, not ~/.ray/auth_token). `raysweep run --address` then runs digits
sweeps on it:

- two trials run at the same time, one per node, and both land in one MLflow store; then the
  second node is killed while its trial trains there: that trial is restarted on the head and
  resumes from its last checkpoint, and the sweep finishes with every trial finished (one
  sweep checks both, to keep the suite short). Once per executor: trials trained inline
  (their Tune trial retried by Tune) and as Ray Train worker groups (workers retried by Ray
  Train's FailureConfig, the Tune trial staying on the head);
- one sweep: sixteen trials at once (an eighth of a CPU each) all end together, and the
  tracking server records exactly sixteen runs, none lost, none twice; and a trial whose
  resources no node has (a GPU node type the autoscaler config names, which never comes)
  fails after `resources.placement_timeout_s`, naming the missing GPU, once per executor,
  while the sweep's other trials finish;
- a client with the wrong token is refused.

Tracking is what cluster.yaml sets up on a head: an `mlflow server` (MLflow's default 4
processes, artifacts proxied) whose runs live in PostgreSQL, a real one on loopback
(tests/pg.py; the module is skipped, saying so, where PostgreSQL is not installed).

Startup: under heavy load a raylet aborts when its dashboard agent is not up within a fixed
15 s (Ray's `WaitForPersistedPort`, not configurable). Each `ray start` therefore runs in its own
session whose scheduler weight (autogroup nice) is raised to -10 while the node starts and set
back to 0 as soon as it is up or has failed; a failed start is retried.

Stopping: `ray stop` would stop every Ray process of this user on the machine (other people's
test runs included), so it is never called. Every process of this cluster inherits an
environment marker (`RAYSWEEP_TEST_RAY_NODE=<unique id>-<node>`) from its `ray start`; teardown
(and the node kill) SIGKILLs exactly the processes whose /proc/<pid>/environ carries it, plus
the process tree under that `ray start`, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import RAYSWEEP, ROOT
from tests.holds import Holds
from tests.pg import PostgresServer
from tests.test_tracking_outage import TrackingServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

RAY = ROOT / ".venv" / "bin" / "ray"
MARKER = "RAYSWEEP_TEST_RAY_NODE"
START_TIMEOUT = 240.0  # one `ray start` attempt; a loaded machine takes 30-90 s
START_ATTEMPTS = 3


# --- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent pid, ...); None if
    the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _proc_table() -> dict[int, int]:
    """pid -> parent pid, for every process we can see."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            table[int(entry.name)] = int(fields[1])
    return table


def _descendants(root: int) -> set[int]:
    table = _proc_table()
    found, frontier = set(), {root}
    while frontier:
        children = {pid for pid, ppid in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _marked(value: str) -> set[int]:
    """Processes whose environment carries MARKER=value (Ray workers inherit it from their
    raylet; their command line is rewritten to `ray::...`, their environment is not)."""
    needle = f"{MARKER}={value}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0"):
                pids.add(int(entry.name))
    return pids


def _group_nice(pid: int, value: int) -> None:
    """The scheduler weight of the session (autogroup) `pid` leads. With autogroup scheduling
    (Linux' default for desktops and many VMs) CPU time is shared fairly between sessions,
    and per-process nice values only count inside a session: a `ray start` started in its own
    session gets one session's share for its GCS, dashboard, raylet and agents together."""
    with contextlib.suppress(OSError):  # no autogroup, or no CAP_SYS_NICE: no boost
        Path(f"/proc/{pid}/autogroup").write_text(str(value))


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited. A killed process stays in /proc as a
    zombie until its parent (or init, for an orphan) reaps it: that one is gone already."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --- the cluster ----------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    marker: str
    proc: subprocess.Popen
    temp_dir: Path
    log: Path
    node_id: str = ""

    def logs(self) -> Path:
        return self.temp_dir / "session_latest" / "logs"

    def kill(self) -> None:
        """SIGKILL this node's processes (a machine that vanished) and nothing else."""
        for _ in range(10):
            pids = ({self.proc.pid} | _descendants(self.proc.pid) | _marked(self.marker)) - {
                os.getpid()
            }
            pids = {p for p in pids if _running(p)}
            if not pids:
                break
            _kill(pids)
            time.sleep(0.5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        parts = [f"--- {self.log.name}:\n" + _tail(self.log, lines)]
        for name in ("raylet.out", "gcs_server.out"):
            path = self.logs() / name
            if path.exists():
                parts.append(f"--- {self.name} {name}:\n" + _tail(path, 15))
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]
    gcs_port: int
    nodes: dict[str, Node] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    starts: int = 0  # every `ray start` gets its own temp dir and marker

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def start_node(self, name: str, args: list[str]) -> Node:
        """`ray start --block` (retried: under heavy load the raylet can give up waiting
        15 s, a fixed limit, for its dashboard agent and abort)."""
        failures = []
        for attempt in range(1, START_ATTEMPTS + 1):
            node = self._start_once(name, args)
            error = self._wait_started(node)
            _group_nice(node.proc.pid, 0)
            if error is None:
                node.node_id = _node_id(node)
                self.nodes[name] = node
                return node
            failures.append(f"attempt {attempt}: {error}\n{node.tail()}")
            node.kill()
        pytest.fail(
            f"`ray start` of node {name} failed {START_ATTEMPTS} times:\n" + "\n".join(failures)
        )

    def _start_once(self, name: str, args: list[str]) -> Node:
        self.starts += 1
        temp_dir = self.base / f"{name}-{self.starts}"
        marker = f"{self.uid}-{name}-{self.starts}"
        ports = {
            "--node-manager-port": _free_port(),
            "--object-manager-port": _free_port(),
            "--dashboard-agent-listen-port": _free_port(),
            "--dashboard-agent-grpc-port": _free_port(),
            "--runtime-env-agent-port": _free_port(),
            "--metrics-export-port": _free_port(),
        }
        cmd = [
            str(RAY),
            "start",
            "--block",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            "--num-gpus=0",
            "--object-store-memory=200000000",
            "--min-worker-port=0",
            "--max-worker-port=0",
            *(f"{k}={v}" for k, v in ports.items()),
            *args,
        ]
        log = self.base / f"{name}-{self.starts}.log"
        with log.open("w") as fh:
            proc = subprocess.Popen(
                cmd,
                env={**self.env, MARKER: marker},
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Start-up at a higher priority (undone once the node is up or has failed): the
        # raylet aborts if its dashboard agent is not up within a fixed 15 s.
        _group_nice(proc.pid, -10)
        return Node(name, marker, proc, temp_dir, log)

    def _wait_started(self, node: Node) -> str | None:
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if "Ray runtime started" in node.log.read_text(errors="replace"):
                return None
            if node.proc.poll() is not None:
                return f"ray start exited with {node.proc.returncode}"
            raylet = node.logs() / "raylet.out"
            if raylet.exists() and "Check failed" in raylet.read_text(errors="replace"):
                return "the raylet aborted"
            time.sleep(0.5)
        return f"not started after {START_TIMEOUT:.0f} s"

    def teardown(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.kill()
        # Stragglers of failed attempts too: every marker this cluster ever handed out.
        for _ in range(5):
            pids = {
                int(e.name)
                for e in Path("/proc").iterdir()
                if e.name.isdigit() and _has_prefix_marker(int(e.name), self.uid)
            }
            if not pids:
                break
            _kill(pids)
            time.sleep(0.5)


def _has_prefix_marker(pid: int, uid: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(v.startswith(f"{MARKER}={uid}-".encode()) for v in env.split(b"\0"))


def _node_id(node: Node) -> str:
    text = (node.logs() / "raylet.out").read_text(errors="replace")
    marker = "Setting node ID node_id="
    return text[text.index(marker) + len(marker) :].split()[0]


def _start_node2(c: Cluster) -> Node:
    return c.start_node("node2", [f"--address={c.address}", "--num-cpus=1"])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (1 CPU, `trial_driver`) + second node (1 CPU); one start for the whole module."""
    # Short path: Ray's Unix sockets live under the temp dir (108-byte limit).
    base = Path(tempfile.mkdtemp(prefix="rs-mn-", dir="/tmp"))
    token = base / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for var in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYSWEEP_STORAGE", "RAY_AUTH_TOKEN"):
        env.pop(var, None)
    # Token authentication stays on, as on a real cluster; every process of the test (both
    # nodes and the raysweep driver) reads the same token file.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    env["RAY_raylet_start_wait_time_s"] = "240"
    c = Cluster(base=base, env=env, gcs_port=_free_port())
    try:
        c.start_node(
            "head",
            [
                "--head",
                f"--port={c.gcs_port}",
                "--num-cpus=1",
                '--resources={"trial_driver": 100}',
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={_free_port()}",
                f"--ray-client-server-port={_free_port()}",
            ],
        )
        _start_node2(c)
        yield c
    finally:
        c.teardown()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    """The MLflow tracking server every sweep here records through, as cluster.yaml runs it on
    the head: its runs in PostgreSQL (a database of its own), artifacts proxied by the server
    (to a local directory here, S3 there), MLflow's default 4 server processes."""
    database = f"mlflow_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    root = tmp_path_factory.mktemp("mlflow-pg")
    server = TrackingServer(root, free_port(), backend=postgres.uri(database), workers=4)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- sweeps ---------------------------------------------------------------------------------


def _sweep(write_sweep, name: str, epochs: int, executor: str, batch_size: int = 32) -> Path:
    return write_sweep(
        {
            "name": name,
            "model": {"name": "lenet"},
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "optimizer": {"name": "adam", "lr": 1e-3},
            },
            "sweep": {"axes": {"train.seed": [0, 1]}},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "executor": executor},
        }
    )


def _run(
    cluster: Cluster,
    spec: Path,
    tmp_path: Path,
    log: Path,
    tracking_uri: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    args = [
        str(RAYSWEEP),
        "run",
        str(spec),
        "--address",
        cluster.address,
        "--storage",
        str(tmp_path / "ray_results"),
        "--tracking-uri",
        tracking_uri,
    ]
    with log.open("w") as fh:
        return subprocess.Popen(
            args,
            cwd=tmp_path,
            env={**cluster.env, MARKER: f"{cluster.uid}-driver", **(env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(
    proc: subprocess.Popen, log: Path, cluster: Cluster, timeout: float, code: int = 0
) -> str:
    """The sweep's output once it exited with `code` (a clear failure with every log
    otherwise)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(
            f"the sweep did not finish in {timeout:.0f} s:\n{log.read_text()}\n"
            + "\n".join(n.tail() for n in cluster.nodes.values())
        )
    out = log.read_text()
    if proc.returncode != code:
        pytest.fail(
            f"raysweep run exited {proc.returncode}:\n{out}\n"
            + "\n".join(n.tail() for n in cluster.nodes.values())
        )
    return out


def _trial_runs(tracking_uri: str, name: str) -> tuple[list, dict[str, object]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None, f"no MLflow experiment {name}"
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {
        r.data.tags["raysweep.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    return parents, children


def _all_runs(tracking_uri: str, name: str) -> tuple[list, list]:
    """(parents, children) of a sweep's experiment: every run, duplicates included."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None, f"no MLflow experiment {name}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return [r for r in runs if r not in children], children


def _tiny(name: str, **body: object) -> dict:
    """A sweep that costs as little as a real one can: digits at 8x8, a 1k-parameter net, one
    epoch, no model logged."""
    return {
        "name": name,
        "dataset": {"name": "digits", "image_size": 8},
        "model": {"name": "nn", "hidden_channels": [4, 8], "hidden_neurons": [16]},
        "train": {"epochs": 1, "batch_size": 64, "log_model": False},
        **body,
    }


def _node2_up(cluster: Cluster) -> None:
    if cluster.nodes["node2"].proc.poll() is not None:  # killed by a node-death test
        _start_node2(cluster)


def _tune_results(storage: Path, trial_id: str) -> list[dict]:
    """Every result Tune recorded for a trial (its result.json), in order."""
    files = list(storage.glob(f"*/{trial_id}/result.json"))
    assert len(files) == 1, f"expected one result.json for {trial_id}, found {files}"
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


# --- tests ----------------------------------------------------------------------------------


def test_cluster_refuses_a_client_with_a_wrong_token(cluster: Cluster) -> None:
    """Token authentication is really on: the same connection `raysweep run --address` makes,
    with a token that is not the cluster's, is refused."""
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # One connection attempt, not Ray's ~20 (a second each): a refusal is refused every time.
    env["RAY_gcs_server_port_wait_time_s"] = "1"
    code = f"import ray; ray.init(address={cluster.address!r}, log_to_driver=False)"
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "InvalidAuthToken" in out or "Authentication" in out, out


CONCURRENT = 16

# What `ray up` leaves on a head (~/ray_bootstrap_config.yaml, read by `raysweep run`): the head
# and a GPU node type the autoscaler may start. Here none ever starts (this machine has no GPU
# and no autoscaler): the GPU node that quota or capacity keeps from coming.
AUTOSCALER_CONFIG = {
    "cluster_name": "raysweep-test",
    "max_workers": 1,
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 1, "trial_driver": 100}, "max_workers": 0},
        "gpu": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0, "max_workers": 1},
    },
}
PLACEMENT_TIMEOUT_S = 3


def test_sixteen_trials_at_once_are_recorded_once_each_and_gpu_trials_no_node_takes_fail(
    cluster: Cluster, tracking: TrackingServer, write_sweep, tmp_path: Path
) -> None:
    """One sweep planned against the cluster's autoscaler config, which names a GPU node type.

    Its CPU study: sixteen trials at once on the two nodes (an eighth of a CPU each), every one
    held after its epoch until all sixteen are there, then released together: their results,
    files and ends reach the tracking server's processes (PostgreSQL behind them) at once.
    Exactly one child run per trial, each FINISHED with its epoch logged once.

    Its two GPU studies (one trial inline, one a Ray Train worker group) are planned (the node
    type exists) but no node with a GPU ever joins: each fails once it has waited
    `placement_timeout_s`, saying it needs 1 GPU and no node offered it, and is recorded FAILED
    with that error; the exit code is 1, as for any failed trial."""
    import yaml

    _node2_up(cluster)
    home = tmp_path / "home"  # the driver's home: where it finds the autoscaler config
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(AUTOSCALER_CONFIG))
    name = "mn-pg-sixteen"
    gpu = {"gpus_per_worker": 1}
    spec = write_sweep(
        _tiny(
            name,
            sweep={
                "studies": [
                    {"name": "cpu", "axes": {"train.seed": list(range(CONCURRENT))}},
                    {"name": "gpu_inline", "set": {"train.seed": 100}, "resources": gpu},
                    {
                        "name": "gpu_workers",
                        "set": {"train.seed": 101},
                        "resources": {**gpu, "executor": "torch_trainer"},
                    },
                ]
            },
            resources={
                "cpus_per_worker": 2 / CONCURRENT,
                "gpus_per_worker": 0,
                "max_concurrent": CONCURRENT,
                "placement_timeout_s": PLACEMENT_TIMEOUT_S,
            },
        )
    )
    trials = [f"t{i:03d}" for i in range(CONCURRENT)]
    gpu_trials = [f"t{CONCURRENT:03d}", f"t{CONCURRENT + 1:03d}"]
    holds = Holds(tmp_path / "holds")
    points = [f"after_checkpoint:{t}:1" for t in trials]
    log = tmp_path / "sweep.log"
    env = {**holds.env(*points), "HOME": str(home)}
    proc = _run(cluster, spec, tmp_path, log, tracking.uri, env=env)
    for point in points:  # all sixteen train at the same time
        holds.wait(point, proc, log)
    for point in points:
        holds.release(point)
    out = _finish(proc, log, cluster, timeout=900, code=1)
    assert f"{CONCURRENT + 2} trials" in out and f"up to {CONCURRENT} at a time" in out, out
    why = (
        f"could not be placed in {PLACEMENT_TIMEOUT_S} s: "
        "it needs 1 GPU per worker and no node offered it"
    )
    for trial in gpu_trials:
        assert f"{trial} FAILED    {trial} {why}" in out, out
        assert f"raysweep: trial {trial} " in out, out  # listed among the failed trials
        assert f"{trial} retrying" not in out, out  # waiting as long again would not help
    assert "Traceback" not in out, out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    parents, children = _all_runs(tracking.uri, name)
    assert [p.info.status for p in parents] == ["FAILED"], out  # (two of its trials failed)
    ids = sorted(r.data.tags.get("raysweep.trial_id") for r in children)
    assert ids == [*trials, *gpu_trials], ids  # none lost, none twice
    parent_id = parents[0].info.run_id
    for run in children:
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent_id, tags
        if tags["raysweep.trial_id"] in gpu_trials:
            assert run.info.status == "FAILED", (tags["raysweep.trial_id"], run.info)
            assert tags["raysweep.status"] == "failed", tags
            error = Path(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path)))
            assert f"{tags['raysweep.trial_id']} {why}" in error.read_text(), error.read_text()
            continue
        assert run.info.status == "FINISHED", (tags["raysweep.trial_id"], run.info.status)
        assert tags["raysweep.status"] == "finished", tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
        assert steps == [1], (tags["raysweep.trial_id"], steps)


@pytest.mark.parametrize("executor", ["inline", "torch_trainer"])
def test_trials_run_one_per_node_and_a_killed_node_s_trial_resumes_on_head(
    cluster: Cluster, tracking: TrackingServer, write_sweep, tmp_path: Path, executor: str
) -> None:
    """Two trials at once, one per node, into one MLflow store; then the second node dies
    mid-trial and its trial finishes on the head from its last checkpoint."""
    if cluster.nodes["node2"].proc.poll() is not None:  # killed by the other executor's run
        _start_node2(cluster)
    for node in cluster.nodes.values():
        assert node.proc.poll() is None, f"node {node.name} is not running:\n" + node.tail()
    node2 = cluster.nodes["node2"]
    assert node2.proc.poll() is None, "the second node is not running:\n" + node2.tail()
    epochs = 4
    name = f"mn-node-dies-{executor.replace('_', '-')}"
    spec = _sweep(write_sweep, name, epochs=epochs, executor=executor)
    log = tmp_path / "sweep.log"
    t0 = time.time()
    # Both trials hold after their epoch-1 checkpoint (one per node); the one whose process
    # runs on node2 (its environment carries node2's marker) is the victim: node2 dies with
    # it held there (its raylet, agents and that process, SIGKILL), then both are released.
    holds = Holds(tmp_path / "holds")
    points = [f"after_checkpoint:{t}:1" for t in ("t000", "t001")]
    proc = _run(cluster, spec, tmp_path, log, tracking.uri, env=holds.env(*points))
    held = {p.split(":")[1]: holds.wait(p, proc, log)["pid"] for p in points}
    on_node2 = _marked(node2.marker)
    victims = [t for t, pid in held.items() if pid in on_node2]
    assert len(victims) == 1, (held, on_node2)
    victim = victims[0]
    node2.kill()
    killed_at = time.time() - t0
    for point in points:
        holds.release(point)

    out = _finish(proc, log, cluster, timeout=900)
    elapsed = time.time() - t0
    assert "t000 finished" in out and "t001 finished" in out, out

    assert "2 trials" in out and "up to 2 at a time" in out, out
    assert "0/2 done, 2 running" in out, out  # concurrent, and (below) on different nodes

    parents, children = _trial_runs(tracking.uri, name)
    assert len(parents) == 1 and sorted(children) == ["t000", "t001"], out
    assert all(r.info.status == "FINISHED" for r in [*parents, *children.values()]), out
    # Where each trial started: one per node (the pids held at epoch 1 said so, above). The
    # driver tags a run with the node of the first result it sees: the other trial's is the
    # head; the victim's is node2 if its epoch-1 result reached the driver before node2 died,
    # else the head (Ray Train queues a worker's reports: they can die with it; the epoch is
    # then logged from the checkpoint's history, so the history below is still gap-free).
    head_id = cluster.nodes["head"].node_id
    nodes = {t: r.data.tags.get("raysweep.node_id") for t, r in children.items()}
    assert all(n == head_id for t, n in nodes.items() if t != victim), nodes
    assert nodes[victim] in (node2.node_id, head_id), nodes
    run = children[victim]
    assert run.data.tags.get("raysweep.status") == "finished", run.data.tags
    assert run.data.tags.get("raysweep.epochs_run") == str(epochs), run.data.tags

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
    assert sorted(steps) == list(range(1, epochs + 1)), steps

    # Tune's own record of the victim: epochs from node2 (those whose results got out), then
    # from the head, never an epoch twice; resumed from its checkpoint, not from scratch.
    assert f"{victim} resumed   from its epoch-1 checkpoint" in out, out
    results = _tune_results(tmp_path / "ray_results", victim)
    seen = [(r["epoch"], r["node_id"]) for r in results]
    epochs_seen = [e for e, _ in seen]
    assert epochs_seen == sorted(set(epochs_seen)), seen
    assert epochs_seen[-1] == epochs, seen
    assert seen[-1][1] == head_id, f"{victim} finished before node2 was killed: {seen}"
    moved = next(i for i, (_, n) in enumerate(seen) if n == head_id)
    assert all(n == node2.node_id for _, n in seen[:moved]), seen
    assert all(n == head_id for _, n in seen[moved:]), seen
    print(
        f"node2 killed at {killed_at:.0f} s after epoch(s) {epochs_seen[:moved]} of {victim}; "
        f"resumed on the head at epoch {epochs_seen[moved]}; sweep done in {elapsed:.0f} s"
    )
