"""Shared fixtures: a digits cache shared by the whole session, a sweep-file writer, and a
PostgreSQL server (tests/pg.py) for the tests that track in one."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.pg import MISSING, PostgresServer, find_bindir

pytest_plugins = ["tests.split"]  # how pytest-xdist's workers share the suite

ROOT = Path(__file__).resolve().parents[1]
RAYSWEEP = ROOT / ".venv" / "bin" / "raysweep"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on loopback for the whole session (tests/pg.py); tests that use it
    are skipped, saying so, where PostgreSQL is not installed."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(MISSING)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def big_report(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a raysweep Report
    """The 48-trial report of `tests.test_report_scale.make_big_sweep`, built once with every
    warning an error (test_report_scale checks it; test_browser renders it)."""
    import warnings

    from raysweep.report.build import write_report
    from tests.test_report_scale import make_big_sweep

    out = tmp_path_factory.mktemp("big") / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return write_report(make_big_sweep(), out, band_cut="shortest")


@pytest.fixture(scope="session", autouse=True)
def library_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other libraries' log files of the runs under test go to a temp dir, not ~/.cache."""
    directory = tmp_path_factory.mktemp("library-logs")
    os.environ["RAYSWEEP_LOG_DIR"] = str(directory)
    return directory


@pytest.fixture(scope="session", autouse=True)
def raysweep_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raysweep's own cache (the empty MLflow store new SQLite stores are copied from,
    raysweep.sqlite_store) in a temp dir for the session, not ~/.cache."""
    directory = tmp_path_factory.mktemp("raysweep-cache")
    os.environ["RAYSWEEP_CACHE_DIR"] = str(directory)
    return directory


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tensor cache for every test that trains on digits (decoded once per session)."""
    return tmp_path_factory.mktemp("tensor-cache")


@pytest.fixture
def write_sweep(tmp_path: Path, digits_cache: Path):
    """Write a digits sweep file into tmp_path from a dict; returns its path."""

    def write(body: dict, name: str = "sweep.yaml") -> Path:
        data = dict(body)
        data.setdefault("dataset", {"name": "digits", "image_size": 32})
        data["dataset"] = {**data["dataset"], "cache_dir": str(digits_cache)}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def run_cli(
    args: list[str], cwd: Path, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`raysweep ARGS` in `cwd`, with MLflow's default store there (and `env` added)."""
    return subprocess.run(
        [str(RAYSWEEP), *args],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


CLI_SWEEP = {
    "name": "e2e-digits",
    "model": {"name": "nn", "hidden_channels": [8, 16], "hidden_neurons": [64, 64]},
    "train": {"epochs": 3, "batch_size": 64, "optimizer": {"name": "adam", "lr": 3.0e-3}},
    "sweep": {
        "studies": [
            {"name": "lr", "mode": "grid", "axes": {"train.optimizer.lr": [3.0e-3, 1.0e-3]}},
            {"name": "models", "mode": "grid", "axes": {"model": [{"name": "lenet"}]}},
            {"name": "broken", "set": {"model.activation": "no-such-activation"}},
            {"name": "diverging", "set": {"train.optimizer": {"name": "sgd", "lr": 1.0e6}}},
            {"name": "slow", "set": {"train.optimizer.lr": 1.0e-6}},
        ],
        "scheduler": {"name": "asha", "grace_epochs": 1, "reduction_factor": 2},
    },
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
}


@pytest.fixture(scope="session")
def cli_sweep(tmp_path_factory: pytest.TempPathFactory, digits_cache: Path) -> dict:
    """One real sweep through `raysweep run`, shared by the end-to-end test modules: 6 trials
    under ASHA, of which one fails at run time, one diverges and one learns too slowly."""
    work = tmp_path_factory.mktemp("cli-sweep")
    spec = dict(CLI_SWEEP)
    spec["dataset"] = {"name": "digits", "image_size": 32, "cache_dir": str(digits_cache)}
    (work / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    # An empty raysweep cache: this sweep makes the empty MLflow store that new SQLite stores
    # are copied from (raysweep.sqlite_store), as a first sweep on a new machine does.
    cache = {"RAYSWEEP_CACHE_DIR": str(work / "raysweep-cache")}
    proc = run_cli(["run", "sweep.yaml", "--storage", str(work / "ray")], cwd=work, env=cache)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    # What `run` itself left on the parent run (later tests' `raysweep report` adds to it).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(CLI_SWEEP["name"])
    parents = (
        client.search_runs([experiment.experiment_id], "tags.`raysweep.role` = 'sweep'")
        if experiment
        else []
    )
    artifacts = {a.path for p in parents for a in client.list_artifacts(p.info.run_id)}
    return {"proc": proc, "work": work, "uri": uri, "parent_artifacts": artifacts}


def cli_env() -> dict[str, str]:
    """The environment raysweep runs in under test: unbuffered, MLflow's default store."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def start_cli(
    args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`raysweep ARGS` in the background, in its own session, output to `log` (with `env` added
    to the environment: e.g. `Holds.env` to hold it at fault points)."""
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(RAYSWEEP), *args],
            cwd=cwd,
            env={**cli_env(), **(env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_runs_left_behind():
    """A test that failed or timed out while a `start_cli` run was going leaves nothing running:
    a second local Ray on the machine would confuse the next tests' (Ray's state API refuses to
    choose between two)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=120)


@pytest.fixture(autouse=True)
def no_ray_in_the_test_process():
    """Every Ray here runs in a process of its own (`raysweep run`, a script): a Ray started in
    the test process (by a Ray call that starts one when none is connected) would stay for the
    worker's later tests, which then plan against it."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
        pytest.fail("this test started a Ray in the test process")


def library_log(console: str) -> Path:
    """The log file of other libraries' messages, as the run's header names it."""
    found = re.search(r"^raysweep: other libraries' messages \(.*?\): (\S+)$", console, re.M)
    assert found, console
    return Path(found[1])


def only_raysweeps_lines(console: str) -> None:
    """Every line on the terminal is raysweep's: its own `raysweep:` lines, its event lines
    (`[m:ss] ...`) and its end-of-run table (a header, a row per trial)."""
    for line in console.splitlines():
        assert not line or line.startswith(("raysweep: ", "[", "trial_id ", "t0")), line
