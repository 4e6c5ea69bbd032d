"""Optimizers and learning-rate schedules named in a sweep file.

`build_optimizer` turns an `OptimizerSpec` into a `torch.optim.Optimizer`;
`resolved_optimizer_params` says which hyperparameters it actually applied (for logging).
`build_schedule` wraps the optimizer in an `LrSchedule` that sets the learning rate once per
epoch, with an optional linear warmup in front of every schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "rmsprop")
SCHEDULE_NAMES = ("none", "poly", "cosine", "step", "plateau")

_OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def _momentum_or(spec: Any, default: float) -> float:
    # `is None` rather than `or`: an explicit momentum=0.0 must stay 0.0.
    return default if spec.momentum is None else float(spec.momentum)


def resolved_optimizer_params(spec: Any) -> dict[str, Any]:
    """Return the keyword arguments `build_optimizer` passes to the torch optimizer.

    This is exactly what gets applied, defaults filled in (e.g. `nesterov` gets
    ``{"momentum": 0.9, "nesterov": True, ...}``), so it can be logged as-is. Fields that the
    named optimizer has no use for (momentum for adam/adamw/adagrad, betas outside adam/adamw)
    are left out.
    """
    name = spec.name
    common = {"lr": float(spec.lr), "weight_decay": float(spec.weight_decay)}
    if name == "sgd":
        return {**common, "momentum": _momentum_or(spec, 0.0), "nesterov": False}
    if name == "momentum":
        return {**common, "momentum": _momentum_or(spec, 0.9), "nesterov": False}
    if name == "nesterov":
        momentum = _momentum_or(spec, 0.9)
        if momentum <= 0.0:
            raise ValueError("optimizer 'nesterov' needs a momentum > 0")
        return {**common, "momentum": momentum, "nesterov": True}
    if name in ("adam", "adamw"):
        betas = (float(spec.betas[0]), float(spec.betas[1]))
        return {**common, "betas": betas, "eps": float(spec.eps)}
    if name == "adagrad":
        return {**common, "eps": float(spec.eps)}
    if name == "rmsprop":
        return {**common, "momentum": _momentum_or(spec, 0.0), "eps": float(spec.eps)}
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZER_NAMES)}")


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], spec: Any
) -> torch.optim.Optimizer:
    """Build the torch optimizer named by `spec` over `params`.

    sgd/momentum/nesterov are `SGD` (momentum defaulting to 0.0/0.9/0.9), adam is `Adam`, adamw
    is `AdamW` (decoupled weight decay), adagrad is `Adagrad`, rmsprop is `RMSprop`. weight_decay
    goes to every optimizer (as L2 on the gradient everywhere except adamw).
    """
    kwargs = resolved_optimizer_params(spec)
    return _OPTIMIZER_CLASSES[spec.name](params, **kwargs)


def _decay_lr(spec: Any, base_lr: float, epoch: int, epochs: int) -> float:
    """Lr of the post-warmup schedule at `epoch` (0-based) out of `epochs` (>= 1)."""
    name = spec.name
    min_lr = float(spec.min_lr)
    # Past the planned end (e.g. a resumed run given more epochs) hold the final value.
    epoch = min(epoch, epochs)
    if name in ("none", "plateau"):
        # plateau's reductions depend on the metrics; LrSchedule applies them on top of this.
        return base_lr
    if name == "poly":
        return (base_lr - min_lr) * (1.0 - epoch / epochs) ** float(spec.power) + min_lr
    if name == "cosine":
        return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0
    if name == "step":
        return base_lr * float(spec.gamma) ** (epoch // int(spec.step_size))
    raise ValueError(f"unknown lr schedule {name!r}; expected one of {', '.join(SCHEDULE_NAMES)}")


def lr_at(spec: Any, base_lr: float, epoch: int, epochs: int) -> float:
    """Closed-form lr used during `epoch` (0-based) of a run of `epochs` epochs.

    During the first `spec.warmup_epochs` epochs the lr rises linearly,
    ``base_lr * (epoch + 1) / (warmup_epochs + 1)``; after that the named schedule runs over
    the remaining ``epochs - warmup_epochs`` epochs. For "plateau" this is the lr before any
    metric-driven reduction (i.e. ``base_lr`` after warmup).
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    warmup = int(spec.warmup_epochs)
    if epoch < warmup:
        return base_lr * (epoch + 1) / (warmup + 1)
    # max(1, ...): a warmup as long as the run leaves nothing to decay over; avoid 0-division.
    return _decay_lr(spec, base_lr, epoch - warmup, max(1, epochs - warmup))


class LrSchedule:
    """Per-epoch learning-rate schedule over an optimizer's param groups.

    On construction the lr for epoch 0 is set; `step(epoch_metrics)` is called once at the end
    of every epoch (after evaluation) and sets the lr for the next one.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, spec: Any, epochs: int) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if spec.name not in SCHEDULE_NAMES:
            raise ValueError(
                f"unknown lr schedule {spec.name!r}; expected one of {', '.join(SCHEDULE_NAMES)}"
            )
        self.optimizer = optimizer
        self.spec = spec
        self.epochs = int(epochs)
        # torch's convention: "initial_lr" survives a second schedule on the same optimizer.
        self.base_lrs = [
            float(group.setdefault("initial_lr", group["lr"])) for group in optimizer.param_groups
        ]
        self.epoch = 0  # the epoch whose lr is currently set (= epochs completed so far)
        self._plateau: ReduceLROnPlateau | None = None
        if spec.name == "plateau":
            self._plateau = ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=float(spec.gamma),
                patience=int(spec.patience),
                min_lr=float(spec.min_lr),
            )
        self._apply_closed_form()

    @property
    def lr(self) -> float:
        """Current lr of param group 0."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def _apply_closed_form(self) -> None:
        self._set_lrs([lr_at(self.spec, base, self.epoch, self.epochs) for base in self.base_lrs])

    def step(self, epoch_metrics: dict[str, float]) -> None:
        """End-of-epoch update: set the lr for the next epoch.

        `epoch_metrics` are the metrics of the epoch just finished; "plateau" reads its
        "test_loss" (once warmup is over), the other schedules ignore them.
        """
        self.epoch += 1
        warmup = int(self.spec.warmup_epochs)
        if self._plateau is None or self.epoch <= warmup:
            # Closed form; for plateau this covers warmup and the hand-over to base_lr after it,
            # so plateau only ever sees post-warmup epochs' test_loss.
            self._apply_closed_form()
            return
        if "test_loss" not in epoch_metrics:
            raise KeyError(
                "lr schedule 'plateau' needs 'test_loss' in the epoch metrics, got "
                f"{sorted(epoch_metrics)}"
            )
        self._plateau.step(float(epoch_metrics["test_loss"]))

    def state_dict(self) -> dict[str, Any]:
        """State for checkpoints: epoch counter, base and current lrs, plateau state."""
        return {
            "epoch": self.epoch,
            "epochs": self.epochs,
            "base_lrs": list(self.base_lrs),
            "lrs": [float(group["lr"]) for group in self.optimizer.param_groups],
            "plateau": None if self._plateau is None else self._plateau.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output; the optimizer's lrs are set back to the saved ones."""
        self.epoch = int(state["epoch"])
        self.epochs = int(state["epochs"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        if self._plateau is not None and state.get("plateau") is not None:
            self._plateau.load_state_dict(state["plateau"])
        self._set_lrs([float(lr) for lr in state["lrs"]])


def build_schedule(optimizer: torch.optim.Optimizer, spec: Any, epochs: int) -> LrSchedule:
    """Wrap `optimizer` in the `LrSchedule` named by `spec` for a run of `epochs` epochs.

    Each param group's lr (its "initial_lr" if a schedule was built on it before) is its base
    lr, and the lr for epoch 0 is set right away (with warmup: ``lr / (warmup_epochs + 1)``).
    """
    return LrSchedule(optimizer, spec, epochs)
