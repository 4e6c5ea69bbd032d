"""The records every part of raysweep shares: trial statuses, metric names, MLflow tag names, a
trial's outcome, and the typed shapes of what travels through Ray (the Tune payload, a
checkpoint's state).

One home per fact: other modules import these instead of spelling the strings again. Light on
purpose: no torch, no Ray, no MLflow at import (the CLI's `plan` and `validate` use it).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    from raysweep.plan import Trial


class TrialStatus(StrEnum):
    """How far a trial got, as the driver records it (MLflow tag `raysweep.status`)."""

    PENDING = "pending"  # not started in this run yet
    RUNNING = "running"
    FINISHED = "finished"  # trained all its epochs
    STOPPED = "stopped"  # stopped by the scheduler (ASHA)
    EARLY_STOPPED = "early_stopped"  # its own early stopping
    DIVERGED = "diverged"  # a non-finite loss: a result, not a crash
    FAILED = "failed"  # raised, died beyond its max_failures, or its model cannot be built
    KILLED = "killed"  # the sweep was interrupted first; `--resume` continues it

    @property
    def ended(self) -> bool:
        """Ended for good: nothing more will be recorded for it (killed trials go on)."""
        return self in ENDED

    @property
    def mlflow_status(self) -> str:
        """The MLflow run status that goes with it once ended."""
        if self is TrialStatus.FAILED:
            return "FAILED"
        if self is TrialStatus.KILLED:
            return "KILLED"
        return "FINISHED"


class SweepStatus(StrEnum):
    """How far a sweep got (the parent run's `raysweep.status` tag)."""

    RUNNING = "running"
    DONE = "done"  # every trial ended (some may have failed)
    INTERRUPTED = "interrupted"  # Ctrl-C or a stop: `--resume` finishes it


ENDED = frozenset(
    {
        TrialStatus.FINISHED,
        TrialStatus.STOPPED,
        TrialStatus.EARLY_STOPPED,
        TrialStatus.DIVERGED,
        TrialStatus.FAILED,
    }
)
# Never ranked best: their numbers do not describe a usable model (a killed one has none).
UNRANKED = frozenset({TrialStatus.FAILED, TrialStatus.DIVERGED, TrialStatus.KILLED})

# Per-epoch metrics (DESIGN.md; step = epoch in MLflow). Tools and docs rely on these names.
EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "gap",
    "lr",
    "epoch_time_s",
    "images_per_s",
)
# Per-epoch too, only with `train.eval_train`: the clean eval-mode pass over train images.
CLEAN_TRAIN_METRICS = ("train_eval_loss", "train_eval_acc")
LOGGED_PER_EPOCH = EPOCH_METRICS + CLEAN_TRAIN_METRICS
# Per-trial results logged when a trial ends. `train_time_s` (the sum of its epochs' times) is
# a trial's one duration: the terminal table and `raysweep report` both show it.
FINAL_KEYS = (
    "best_test_acc",
    "best_epoch",
    "best_test_loss",
    "best_test_loss_epoch",
    "best_train_acc",
    "best_train_acc_epoch",
    "best_train_loss",
    "best_train_loss_epoch",
    "train_time_s",
    "stopped_early",
    "diverged",
)
PARAM_NUM_PARAMS = "num_params"  # a run param: the model's parameter count

TAG_TRIAL = "raysweep.trial_id"
TAG_STATUS = "raysweep.status"
TAG_FINGERPRINT = "raysweep.fingerprint"  # a trial's config, hashed: `--resume` checks it
TAG_RESTARTS = "raysweep.restarts"  # how often a trial went on from a checkpoint, all runs
TAG_ROLE = "raysweep.role"  # `sweep` on a sweep's parent run
# On a sweep's parent run made with `--study`: the studies it runs, comma-separated in file
# order (absent: every study). `--resume` continues the newest parent of the same selection.
TAG_SELECTED_STUDIES = "raysweep.selected_studies"
# On a sweep's parent run: where its Tune experiment is (`--resume` restores it from there).
TAG_EXPERIMENT_DIR = "raysweep.experiment_dir"
TAG_STORAGE = "raysweep.storage"
TAG_OVERRIDES = "raysweep.overrides"  # JSON: what the sweep set for the trial
TAG_ERROR = "raysweep.error"  # on a failed trial's run: its error in a few words


@dataclass
class TrialOutcome:
    """How one trial ended, as the driver saw it."""

    trial: Trial
    status: TrialStatus = TrialStatus.PENDING
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    run_id: str | Future[str] | None = None  # a Future until the writer has created the run
    checkpoint_path: str | None = None
    last_epoch: int = 0
    restarts: int = 0  # times its training went on from a checkpoint (worker retry, --resume)
    failures: int = 0  # failures Tune restarted it after (max_failures)
    # Ended in an earlier run of this sweep (MLflow says so); Tune, whose record of it may be
    # seconds older, can start it again on --resume: the recorder then ignores it.
    recorded: bool = False
    started: float | None = None
    ended: float | None = None
    # The sweep's metric per epoch, as an earlier run of the sweep recorded it (`--resume`):
    # a resumed ASHA gets it back into its rungs (raysweep.rungs).
    metric_history: dict[int, float] = field(default_factory=dict)


class RunSettings(TypedDict):
    """What every trial of a sweep gets besides its own config (`TrialPayload["run"]`).

    A trial's resources are its own (`Trial.to_json()["resources"]`, its study's); they are
    resolved against `cluster` (`raysweep.trainables.trial_resources`) by Tune on the driver,
    for the trial's request, and by the trial itself, for how it trains."""

    storage: str  # where checkpoints go (a path or a URI)
    cluster: dict[str, float]  # the cluster's CPU, GPU and trial_driver totals at the start
    # resources.placement_timeout_s (raysweep.placement); absent in sweeps started before it
    placement_timeout_s: NotRequired[float | None]


class TrialPayload(TypedDict):
    """The config Tune hands the trainable: the planned trial (`Trial.to_json()`) and the run."""

    trial: dict[str, Any]
    run: RunSettings


class CheckpointState(TypedDict):
    """`state.pt`: what rank 0 saves every epoch; enough to resume and to rebuild the model.

    Plain tensors, numbers, strings and containers only: it is loaded with
    `torch.load(weights_only=True)`."""

    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    stopper: dict[str, Any] | None
    best: dict[str, float]  # {"value": best test_acc, "epoch": its epoch}
    history: list[dict[str, float]]  # per-epoch metrics, epoch 1 first
    step_log: list[tuple[int, float, float]]  # (epoch, lr, loss) per step
    confusion: list[list[int]]  # rows = true class
    meta: dict[str, Any]  # model name and kwargs, input shape, normalization, classes
    last: dict[str, Any]  # the result reported with this checkpoint (is_last_epoch, ...)
