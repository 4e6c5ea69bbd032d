"""The sweep file's sections as pydantic models: dataset, model, train, sweep and resources.

Nothing here imports torch or ray. `raysweep.config` puts them together into a whole sweep file
(`SweepSpec`) and loads and validates it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RankMetric = Literal["test_acc", "test_loss", "train_acc", "train_loss", "gap"]
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")
# grid/ofat/random are expanded before the sweep starts; tpe chooses each point as results
# arrive (Optuna's TPE through Ray Tune's OptunaSearch).
SearchMode = Literal["grid", "ofat", "random", "tpe"]
SAMPLED_MODES = ("random", "tpe")  # the modes that take distributions and `samples`


class Strict(BaseModel):
    """Base for every section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class DatasetSpec(Strict):
    """Which images to train on; see docs/datasets.md. `name` may be a factory, `file.py:fn`."""

    name: Literal["digits", "cifar10", "fashion_mnist", "mnist", "folder", "npz", "synthetic"]
    root: str = "~/.cache/raysweep/data"
    download: bool = True
    path: str | None = None
    image_size: int | None = Field(None, ge=8, le=512)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    limit_train: int | None = Field(None, ge=1)
    limit_test: int | None = Field(None, ge=1)
    num_train: int = Field(512, ge=1)
    num_test: int = Field(256, ge=1)
    num_classes: int = Field(10, ge=2)
    channels: int = Field(3, ge=1)
    cache_dir: str = "~/.cache/raysweep/tensors"
    split_seed: int = 0
    # A dataset factory's own kwargs (`name: "data.py:load"`; any other unknown key goes here).
    kwargs: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _factory_kwargs(cls, data: Any) -> Any:
        from raysweep.user_code import is_ref

        if isinstance(data, dict) and is_ref(str(data.get("name", ""))):
            extra = {k: v for k, v in data.items() if k not in cls.model_fields}
            if extra:
                data = {k: v for k, v in data.items() if k not in extra}
                data["kwargs"] = {**data.get("kwargs", {}), **extra}
        return data

    @field_validator("name", mode="wrap")
    @classmethod
    def _builtin_or_factory(cls, value: Any, handler: Any) -> Any:
        from raysweep.user_code import is_ref

        return value if isinstance(value, str) and is_ref(value) else handler(value)

    @model_validator(mode="after")
    def _path_for_user_data(self) -> DatasetSpec:
        from raysweep.user_code import UserCodeError, check_call, is_ref

        if self.name in ("folder", "npz") and not self.path:
            raise ValueError(f"dataset '{self.name}' needs 'path' (the {self.name} to read)")
        if is_ref(self.name):
            call = {**({"path": self.path} if self.path else {}), **self.kwargs}
            try:
                check_call(self.name, call, (), "dataset")
            except UserCodeError as exc:
                raise ValueError(str(exc)) from None
        elif self.kwargs:
            raise ValueError(f"dataset '{self.name}' takes no kwargs (only a factory does)")
        return self


class ModelSpec(BaseModel):
    """`name` picks a registered model; every other key is passed to it as a kwarg."""

    model_config = ConfigDict(extra="allow")

    name: str

    @model_validator(mode="after")
    def _known_model(self) -> ModelSpec:
        from raysweep.errors import UnknownModelError
        from raysweep.models.registry import check_model_kwargs

        try:
            check_model_kwargs(self.name, self.kwargs)
        except UnknownModelError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def kwargs(self) -> dict[str, Any]:
        """The model's own kwargs (everything but `name`)."""
        return dict(self.model_extra or {})


class OptimizerSpec(Strict):
    """Optimizer name and hyperparameters (momentum is ignored by adam/adamw/adagrad)."""

    name: Literal["sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)


class LossSpec(Strict):
    """Training loss: cross_entropy, mse (softmax vs one-hot) or multi_margin (hinge)."""

    name: Literal["cross_entropy", "mse", "multi_margin"] = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    margin: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _smoothing_only_for_ce(self) -> LossSpec:
        if self.label_smoothing and self.name != "cross_entropy":
            raise ValueError("label_smoothing applies to cross_entropy only")
        return self


class LrScheduleSpec(Strict):
    """Per-epoch learning-rate schedule with optional linear warmup."""

    name: Literal["none", "poly", "cosine", "step", "plateau"] = "none"
    power: float = Field(1.0, gt=0.0)
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(2, ge=0)
    min_lr: float = Field(0.0, ge=0.0)
    warmup_epochs: int = Field(0, ge=0)


class EarlyStopSpec(Strict):
    """Stop a trial after `patience` epochs without improvement of `metric`."""

    patience: int = Field(ge=1)
    metric: RankMetric = "test_acc"
    min_delta: float = Field(0.0, ge=0.0)


class TrainSpec(Strict):
    """How one trial trains."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    # Train images (a seeded subset) also evaluated in eval mode after each epoch, so that
    # `gap` is the generalisation gap (train_acc is averaged during the epoch, with dropout
    # and augmentation on); 0 = off.
    eval_train: int = Field(0, ge=0)
    optimizer: OptimizerSpec = OptimizerSpec()
    loss: LossSpec = LossSpec()
    lr_schedule: LrScheduleSpec = LrScheduleSpec()
    augment: list[Literal["crop", "flip"]] = []
    early_stop: EarlyStopSpec | None = None
    seed: int = 0
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    max_failures: int = Field(2, ge=0)
    log_model: bool = True
    # Convert BatchNorm layers to SyncBatchNorm when training on several workers (DDP), so
    # BatchNorm statistics do not depend on the number of GPUs; no effect on one worker.
    sync_bn: bool = False
    # Save a checkpoint every N epochs (and always after the last epoch and whenever the
    # trial stops): fewer uploads, more epochs redone after a failure.
    checkpoint_every: int = Field(1, ge=1)


class SchedulerSpec(Strict):
    """Trial scheduler: fifo runs every trial to the end; asha stops the bad ones early."""

    name: Literal["fifo", "asha"] = "fifo"
    grace_epochs: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1.0)
    max_epochs: int | None = Field(None, ge=1)


Axes = dict[str, Any]


def _check_distribution(path: str, kind: str, args: Any) -> None:
    where = f"axis '{path}': {kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where} needs a non-empty list of values")
        return
    numeric = isinstance(args, list) and all(
        isinstance(a, int | float) and not isinstance(a, bool) for a in args
    )
    if not numeric or len(args) != 2:
        raise ValueError(f"{where} needs [low, high] numbers, got {args!r}")
    low, high = args
    if kind == "randint":
        if not (isinstance(low, int) and isinstance(high, int)) or high <= low:
            raise ValueError(f"{where} needs whole numbers low < high (high excluded)")
    elif high <= low:
        raise ValueError(f"{where} needs low < high, got {args!r}")
    elif kind == "loguniform" and low <= 0:
        raise ValueError(f"{where} needs low > 0, got {args!r}")


class StudySpec(Strict):
    """One sub-sweep: fixed overrides (`set`) plus axes expanded by `mode`."""

    name: str | None = None
    mode: SearchMode = "grid"
    set: dict[str, Any] = {}
    axes: Axes = {}
    samples: int = Field(1, ge=1)
    # The study's own `resources` (any keys of the top-level section but max_concurrent): each
    # key it sets replaces the top-level one, the others are inherited. Checked, merged, in
    # SweepSpec (`SweepSpec.study_resources`).
    resources: dict[str, Any] | None = None

    @field_validator("axes")
    @classmethod
    def _axis_values(cls, axes: Axes) -> Axes:
        for path, values in axes.items():
            if isinstance(values, dict):
                kinds = [k for k in values if k in DISTRIBUTIONS]
                if len(values) != 1 or not kinds:
                    raise ValueError(
                        f"axis '{path}': a mapping must be one distribution "
                        f"({', '.join(DISTRIBUTIONS)}), got keys {sorted(values)}"
                    )
                _check_distribution(path, kinds[0], values[kinds[0]])
            elif not isinstance(values, list) or not values:
                raise ValueError(f"axis '{path}': expected a non-empty list of values")
        return axes

    @model_validator(mode="after")
    def _distributions_need_sampling(self) -> StudySpec:
        if self.mode not in SAMPLED_MODES:
            for path, values in self.axes.items():
                if isinstance(values, dict):
                    raise ValueError(
                        f"axis '{path}': distributions need mode: random or tpe "
                        f"(mode is {self.mode})"
                    )
        if self.mode == "tpe" and not self.axes:
            raise ValueError("mode: tpe needs axes to search")
        if self.mode == "tpe" and self.samples < 2:
            raise ValueError("mode: tpe needs samples: the number of trials in all (e.g. 20)")
        return self


class SweepSection(Strict):
    """The `sweep:` section: one study (mode/axes) or several (`studies`)."""

    mode: SearchMode = "grid"
    set: dict[str, Any] = {}
    axes: Axes = {}
    samples: int = Field(1, ge=1)
    studies: list[StudySpec] = []
    repeats: int = Field(1, ge=1)
    scheduler: SchedulerSpec = SchedulerSpec()
    metric: RankMetric = "test_acc"
    goal: Literal["max", "min"] = "max"

    @model_validator(mode="after")
    def _one_form(self) -> SweepSection:
        if self.studies and (self.axes or self.set):
            raise ValueError("give either 'axes'/'set' or 'studies', not both")
        if len(self.studies) > 1 and any(s.mode == "tpe" for s in self.studies):
            raise ValueError(
                "mode: tpe searches one space: give it as the sweep's only study (run the "
                "other studies as their own sweep)"
            )
        if self.repeats > 1 and (self.mode == "tpe" or any(s.mode == "tpe" for s in self.studies)):
            raise ValueError("repeats do not apply to mode: tpe (each trial is a new point)")
        if not self.studies:
            self.studies = [
                StudySpec(mode=self.mode, set=self.set, axes=self.axes, samples=self.samples)
            ]
        return self

    @model_validator(mode="after")
    def _unique_study_names(self) -> SweepSection:
        names = self.study_names()
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(
                    f"studies[{index}].name: '{name}' already names studies[{names.index(name)}] "
                    "(`--study` and the reports tell studies apart by name)"
                )
        return self

    def study_names(self) -> list[str]:
        """The name each study goes by: its own, or `main` (one study) / `study<index>`."""
        several = len(self.studies) > 1
        return [s.name or (f"study{i}" if several else "main") for i, s in enumerate(self.studies)]


class RequestSpec(Strict):
    """What one trial asks of the cluster: the top-level `resources`, or a study's own."""

    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float | None = Field(None, ge=0.0)
    # auto: a one-worker trial trains in its Tune trial's process, more workers are a
    # TorchTrainer worker group; torch_trainer: always a worker group; inline: never.
    executor: Literal["auto", "inline", "torch_trainer"] = "auto"

    @property
    def inline(self) -> bool:
        """Trained in the Tune trial's own process rather than by a TorchTrainer worker group."""
        return self.executor == "inline" or (
            self.executor == "auto" and self.workers_per_trial == 1
        )

    @model_validator(mode="after")
    def _fractional_gpus(self) -> RequestSpec:
        if self.executor == "inline" and self.workers_per_trial > 1:
            raise ValueError(
                "executor: inline trains in one process; workers_per_trial above 1 needs "
                "executor: torch_trainer (or auto)"
            )
        g = self.gpus_per_worker
        if g and g != int(g) and self.workers_per_trial > 1:
            raise ValueError("fractional gpus_per_worker needs workers_per_trial: 1")
        if g and g > 1 and g != int(g):
            raise ValueError("gpus_per_worker above 1 must be a whole number")
        if g and g > 1:
            raise ValueError(
                f"gpus_per_worker: {g:g}: a worker trains on one GPU (the others would sit "
                "idle); for several GPUs per trial set workers_per_trial to the GPU count "
                "and gpus_per_worker: 1 (data-parallel)"
            )
        return self


class ResourcesSpec(RequestSpec):
    """The top-level `resources`: every trial's request (unless its study sets its own) and
    the sweep's concurrency cap."""

    max_concurrent: int | None = Field(None, ge=1)
    # Seconds a trial may wait for resources that no live node has (a GPU node type that
    # cannot start: quota, capacity) before it fails, naming what is missing; the other trials
    # go on. A wait for nodes busy with other trials does not count. 900 leaves an autoscaler
    # minutes to add a node; null waits forever.
    placement_timeout_s: float | None = Field(900.0, gt=0.0)
