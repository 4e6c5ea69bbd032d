"""What the fast tests of the driver's record need instead of Ray: a small planned sweep, fake Tune
trials, a temporary SQLite MLflow store with its one real writer, and a console on a string.

A fresh MLflow SQLite store costs a second or more of schema migrations; one migrated store is
made per test session and copied for every test, so each test has its own store for
milliseconds. Nothing here starts Ray or imports torch.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ray.tune.experiment.trial import Trial as TuneTrial

from raysweep.config import SweepSpec
from raysweep.plan import Trial, expand
from raysweep.progress import Console
from raysweep.records import TAG_EXPERIMENT_DIR, TAG_STORAGE, TAG_TRIAL
from raysweep.tracking import MLFLOW_HTTP_ENV, MlflowWriter

NAME = "unit"
SPEC: dict[str, Any] = {
    "name": NAME,
    "dataset": {"name": "synthetic"},
    "model": {"name": "lenet"},
    "train": {"epochs": 3, "log_model": False, "max_failures": 2},
    "sweep": {
        "studies": [
            {"name": "lr", "axes": {"train.optimizer.lr": [1.0e-3, 1.0e-2]}},
            {"name": "fragile", "set": {"train.max_failures": 0, "train.optimizer.lr": 3.0e-3}},
            {"name": "patient", "set": {"train.max_failures": 5, "train.optimizer.lr": 3.0e-4}},
        ]
    },
}
EXPERIMENT_DIR = "unit-exp"
# The prefix of every event line: elapsed minutes and seconds.
_STAMP = re.compile(r"^\[ *\d+:\d\d\] ")


def make_spec(**changes: Any) -> SweepSpec:
    """The four-trial sweep (t000 lr 1e-3, t001 lr 1e-2, t002 max_failures 0, t003
    max_failures 5; 3 epochs, no model logging), with top-level sections replaced by `changes`."""
    return SweepSpec.model_validate({**SPEC, **changes})


def make_trials(**changes: Any) -> list[Trial]:
    """The planned trials of `make_spec(**changes)`."""
    return expand(make_spec(**changes))


# ---- fake Tune trials ---------------------------------------------------------------------------


@dataclass
class FakeCheckpoint:
    """A Tune checkpoint as the recorder sees it: its path."""

    path: str


@dataclass
class FakeTrial:
    """The part of a Tune `Trial` the recorder reads (and `max_failures`, which it sets)."""

    PENDING: ClassVar[str] = TuneTrial.PENDING
    RUNNING: ClassVar[str] = TuneTrial.RUNNING
    TERMINATED: ClassVar[str] = TuneTrial.TERMINATED
    ERROR: ClassVar[str] = TuneTrial.ERROR

    config: dict[str, Any]
    status: str = TuneTrial.RUNNING
    max_failures: int = 5  # Tune's FailureConfig: the sweep's largest train.max_failures
    num_failures: int = 0  # Tune's count (kept in its experiment state across --resume)
    error_file: str | None = None
    pickled_error_file: str | None = None  # the exception itself, as Tune pickles it
    error_msg: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    checkpoint: FakeCheckpoint | None = None
    trial_id: str = "7661a_00000"  # Tune's own id of the trial (a scheduler's key)


def tune_trial(trial: Trial, **attrs: Any) -> FakeTrial:
    """The fake Tune trial of a planned trial, with Tune's config (`TrialPayload`)."""
    run = {"storage": "/nowhere", "cluster": {"CPU": 2.0, "GPU": 0.0}}
    return FakeTrial(config={"trial": trial.to_json(), "run": run}, **attrs)


NUM_PARAMS = 62006


def result(epoch: int, test_acc: float, *, last: bool = False, **extra: Any) -> dict[str, Any]:
    """One epoch's report as `train.train_trial` sends it; every best so far is this epoch's
    (losses 1/epoch and 1.5/epoch, 2 s per epoch)."""
    return {
        "train_loss": 1.0 / epoch,
        "train_acc": test_acc + 0.05,
        "test_loss": 1.5 / epoch,
        "test_acc": test_acc,
        "gap": 0.05,
        "lr": 1.0e-3,
        "epoch_time_s": 2.0,
        "images_per_s": 1000.0 + epoch,
        "epoch": epoch,
        "best_train_loss": 1.0 / epoch,
        "best_train_loss_epoch": epoch,
        "best_train_acc": test_acc + 0.05,
        "best_train_acc_epoch": epoch,
        "best_test_loss": 1.5 / epoch,
        "best_test_loss_epoch": epoch,
        "train_time_s": 2.0 * epoch,
        "num_params": NUM_PARAMS,
        "best_test_acc": test_acc,
        "best_epoch": epoch,
        "stopped_early": 0,
        "diverged": 0,
        "is_last_epoch": int(last),
        "resumed_from": 0,
        "node_id": "node-a",
        "host": "host-a",
        "device": "cpu",
        "world_size": 1,
        **extra,
    }


# ---- the console ------------------------------------------------------------------------------


def make_console(total: int, quiet: bool = False) -> tuple[Console, io.StringIO]:
    """A console writing to a string, counting `total` trials (as `sweep_started` sets it)."""
    stream = io.StringIO()
    console = Console(stream=stream, quiet=quiet)
    console.total = total
    return console, stream


def events(stream: io.StringIO) -> list[str]:
    """The console's lines without their `[mmm:ss] ` stamp (every line must have one)."""
    lines = stream.getvalue().splitlines()
    for line in lines:
        assert _STAMP.match(line), f"event line without its time stamp: {line!r}"
    return [_STAMP.sub("", line) for line in lines]


# ---- the MLflow store -------------------------------------------------------------------------

_TEMPLATE: list[Path] = []  # one migrated, empty store per test session


def _template(factory: pytest.TempPathFactory) -> Path:
    if not _TEMPLATE:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        root = factory.mktemp("mlflow-template")
        db = root / "mlflow.db"
        store = SqlAlchemyStore(f"sqlite:///{db}", str(root / "artifacts"))
        store.engine.dispose()
        _TEMPLATE.append(db)
    return _TEMPLATE[0]


@dataclass
class Store:
    """A test's own SQLite MLflow store, its writer, and what the writer was asked to do."""

    root: Path
    uri: str
    writer: MlflowWriter
    experiment_path: str  # <storage>/<experiment dir>: where the done markers are
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    checkpoints: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def client(self) -> Any:
        """The writer's MlflowClient (read back after `writer.wait()`)."""
        return self.writer.client

    def start_parent(self, **params: Any) -> str:
        """A sweep's parent run, as `runner` creates it."""
        tags = {"raysweep.role": "sweep", TAG_EXPERIMENT_DIR: EXPERIMENT_DIR, TAG_STORAGE: "/s"}
        return self.writer.start_parent(f"{NAME} sweep", tags, params)

    def children(self, parent_id: str) -> dict[str, Any]:
        """The child runs of `parent_id` by trial id (every child must have a distinct one)."""
        runs = self.client.search_runs(
            [self.writer.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
        )
        found = {run.data.tags[TAG_TRIAL]: run for run in runs}
        assert len(found) == len(runs), f"two runs for one trial: {runs}"
        return found

    def history(self, run_id: str, key: str = "test_acc") -> list[tuple[int, float]]:
        """A metric's (step, value) pairs in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))

    def artifact_text(self, run_id: str, path: str) -> str:
        """A text artifact of a run."""
        local = self.client.download_artifacts(run_id, path, str(self.root / "downloads"))
        return Path(local).read_text()

    def writes(self, name: str | None = None) -> list[tuple[str, tuple[Any, ...]]]:
        """The writes submitted so far (those of one writer method if `name`), in order."""
        return [c for c in self.calls if name is None or c[0] == name]


@contextlib.contextmanager
def open_store(
    root: Path, factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A fresh store under `root` with its writer; flushed (and checked error-free) at the end.

    Every write submitted is also noted in `Store.calls`; `log_checkpoint` is replaced by a stub
    noting its arguments in `Store.checkpoints` (no checkpoint, torch or model needed).
    The writer sets MLflow's process-wide tracking URI and HTTP settings: both are put back."""
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    db = root / "mlflow.db"
    shutil.copy(_template(factory), db)
    uri = f"sqlite:///{db}"
    for key, value in MLFLOW_HTTP_ENV.items():  # set (and put back) here, not by the writer
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow sets it with the URI
    MlflowClient(uri).create_experiment(NAME, artifact_location=str(root / "artifacts"))
    with tracking_utils._use_tracking_uri(uri):
        writer = MlflowWriter(uri, NAME)
        store = Store(root, uri, writer, str(root / "ray" / EXPERIMENT_DIR))
        submit: Callable[..., Any] = writer.submit

        def noting(fn: Callable[..., Any], *args: Any) -> Any:
            store.calls.append((getattr(fn, "__name__", str(fn)), args))
            return submit(fn, *args)

        def log_checkpoint(*args: Any) -> None:
            store.checkpoints.append(args)

        monkeypatch.setattr(writer, "submit", noting)
        monkeypatch.setattr(writer, "log_checkpoint", log_checkpoint)
        try:
            yield store
        finally:
            errors = writer.flush(grace_s=0)
        assert errors == [], errors
