"""Optimizers and lr schedules: every named option must reach the torch optimizer."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch

from raysweep.optim import (
    OPTIMIZER_NAMES,
    build_optimizer,
    build_schedule,
    lr_at,
    resolved_optimizer_params,
)
from raysweep.sections import LrScheduleSpec, OptimizerSpec

# ---- optimizers -----------------------------------------------------------------------------

EXPECTED_CLASS = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}

# What each name must put in param group 0 when only lr and weight_decay are given.
EXPECTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "nesterov": False},
    "momentum": {"momentum": 0.9, "nesterov": False},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8},
    "adagrad": {"eps": 1e-8},
    "rmsprop": {"momentum": 0.0, "eps": 1e-8},
}


def _linear() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_each_name_builds_its_class_with_its_defaults(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.05, weight_decay=0.01)
    opt = build_optimizer(_linear().parameters(), spec)
    assert type(opt) is EXPECTED_CLASS[name]
    group = opt.param_groups[0]
    assert group["lr"] == 0.05
    assert group["weight_decay"] == 0.01
    for key, value in EXPECTED_DEFAULTS[name].items():
        assert group[key] == value, key


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_resolved_params_are_what_the_optimizer_holds(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.02, momentum=0.5, weight_decay=0.003, eps=1e-6)
    resolved = resolved_optimizer_params(spec)
    group = build_optimizer(_linear().parameters(), spec).param_groups[0]
    for key, value in resolved.items():
        assert group[key] == value, key


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop"])
def test_explicit_momentum_is_applied(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.1, momentum=0.5)
    assert build_optimizer(_linear().parameters(), spec).param_groups[0]["momentum"] == 0.5


def test_explicit_zero_momentum_stays_zero() -> None:
    spec = OptimizerSpec(name="momentum", lr=0.1, momentum=0.0)
    assert build_optimizer(_linear().parameters(), spec).param_groups[0]["momentum"] == 0.0


def test_nesterov_with_zero_momentum_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nesterov"):
        build_optimizer(_linear().parameters(), OptimizerSpec(name="nesterov", lr=0.1, momentum=0))


@pytest.mark.parametrize("name", ["adam", "adamw", "adagrad"])
def test_momentum_is_ignored_where_it_means_nothing(name: str) -> None:
    # The seed reports' configs carry momentum=0.9 next to adam.
    spec = OptimizerSpec(name=name, lr=0.01, momentum=0.9)
    opt = build_optimizer(_linear().parameters(), spec)
    assert "momentum" not in resolved_optimizer_params(spec)
    assert type(opt) is EXPECTED_CLASS[name]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_betas_are_applied(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.01, betas=(0.8, 0.99))
    assert build_optimizer(_linear().parameters(), spec).param_groups[0]["betas"] == (0.8, 0.99)


@pytest.mark.parametrize("name", ["adam", "adamw", "adagrad", "rmsprop"])
def test_eps_is_applied(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.01, eps=1e-5)
    assert build_optimizer(_linear().parameters(), spec).param_groups[0]["eps"] == 1e-5


def test_param_groups_are_accepted() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    groups = [
        {"params": model[0].parameters()},
        {"params": model[1].parameters(), "lr": 0.5},
    ]
    opt = build_optimizer(groups, OptimizerSpec(name="momentum", lr=0.1))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)


TRAIN_LR = {
    "sgd": 0.5,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adam": 0.05,
    "adamw": 0.05,
    "adagrad": 0.2,
    "rmsprop": 0.01,
}


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_reduces_the_loss_on_a_tiny_problem(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 5)
    y = (x @ torch.randn(5) > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = build_optimizer(
        model.parameters(), OptimizerSpec(name=name, lr=TRAIN_LR[name], weight_decay=1e-4)
    )

    def loss_now() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x), y)

    start = loss_now().item()
    for _ in range(30):
        opt.zero_grad()
        loss_now().backward()
        opt.step()
    end = loss_now().item()
    assert end < 0.7 * start, (start, end)


def _zero_grad_step(name: str, weight_decay: float, lr: float = 0.1) -> tuple[float, float]:
    """One step with an all-zero gradient: only weight decay can move the weights."""
    weight = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 10))
    opt = build_optimizer([weight], OptimizerSpec(name=name, lr=lr, weight_decay=weight_decay))
    before = weight.detach().norm().item()
    opt.zero_grad()
    (0.0 * weight.sum()).backward()
    opt.step()
    return before, weight.detach().norm().item()


@pytest.mark.parametrize("name", ["sgd", "momentum", "adamw"])
def test_weight_decay_shrinks_weights_by_the_expected_factor(name: str) -> None:
    # SGD (first step, any momentum): w <- w - lr*wd*w; AdamW (decoupled): w <- w*(1 - lr*wd),
    # the Adam part being 0 for a zero gradient.
    before, after = _zero_grad_step(name, weight_decay=0.5, lr=0.1)
    assert after / before == pytest.approx(1.0 - 0.1 * 0.5, rel=1e-6)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_weight_decay_shrinks_weights_for_every_optimizer(name: str) -> None:
    before, after = _zero_grad_step(name, weight_decay=0.5, lr=0.01)
    assert after < before - 1e-4


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_no_weight_decay_leaves_weights_alone(name: str) -> None:
    before, after = _zero_grad_step(name, weight_decay=0.0)
    assert after == pytest.approx(before, abs=1e-7)


def test_adam_weight_decay_is_l2_and_adamw_is_decoupled() -> None:
    _, adam = _zero_grad_step("adam", weight_decay=0.5, lr=0.01)
    _, adamw = _zero_grad_step("adamw", weight_decay=0.5, lr=0.01)
    assert adam != pytest.approx(adamw, rel=1e-4)


# ---- schedules ------------------------------------------------------------------------------

BASE_LR = 0.1
EPOCHS = 10
SCHEDULE_KW = {"power": 2.0, "step_size": 3, "gamma": 0.5, "min_lr": 0.004}


def _expected_lr(name: str, warmup: int, epoch: int) -> float:
    """The schedules written out independently of raysweep.optim."""
    lr, low = BASE_LR, SCHEDULE_KW["min_lr"]
    if epoch < warmup:
        return lr * (epoch + 1) / (warmup + 1)
    e, n = epoch - warmup, EPOCHS - warmup
    if name == "none":
        return lr
    if name == "poly":
        return (lr - low) * (1 - e / n) ** SCHEDULE_KW["power"] + low
    if name == "cosine":
        return low + (lr - low) * (1 + math.cos(math.pi * e / n)) / 2
    if name == "step":
        return lr * SCHEDULE_KW["gamma"] ** (e // SCHEDULE_KW["step_size"])
    raise AssertionError(name)


def _run(schedule_spec: LrScheduleSpec, losses: list[float] | None = None) -> list[float]:
    """Train a 1-weight SGD model for EPOCHS epochs; return the lr each epoch really used."""
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([weight], OptimizerSpec(name="sgd", lr=BASE_LR))
    sched = build_schedule(opt, schedule_spec, EPOCHS)
    used = []
    for epoch in range(EPOCHS):
        before = weight.item()
        opt.zero_grad()
        weight.sum().backward()  # gradient 1: the SGD step moves the weight by exactly lr
        opt.step()
        used.append(before - weight.item())
        assert sched.lr == opt.param_groups[0]["lr"]
        loss = losses[epoch] if losses else 1.0
        sched.step({"test_loss": loss, "test_acc": 0.5})
    return used


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("name", ["none", "poly", "cosine", "step"])
def test_lr_used_each_epoch_is_the_closed_form(name: str, warmup: int) -> None:
    spec = LrScheduleSpec(name=name, warmup_epochs=warmup, **SCHEDULE_KW)
    used = _run(spec)
    for epoch, lr in enumerate(used):
        assert lr == pytest.approx(_expected_lr(name, warmup, epoch), rel=1e-5), epoch
        assert lr == pytest.approx(lr_at(spec, BASE_LR, epoch, EPOCHS), rel=1e-5), epoch


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("name", ["none", "poly", "cosine", "step"])
def test_lr_set_on_the_optimizer_is_exactly_lr_at(name: str, warmup: int) -> None:
    spec = LrScheduleSpec(name=name, warmup_epochs=warmup, **SCHEDULE_KW)
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerSpec(name="sgd", lr=0.1))
    sched = build_schedule(opt, spec, EPOCHS)
    for epoch in range(EPOCHS):
        assert opt.param_groups[0]["lr"] == lr_at(spec, 0.1, epoch, EPOCHS)
        sched.step({})


def test_schedule_values_by_hand() -> None:
    def lrs(**kw: Any) -> list[float]:
        return [lr_at(LrScheduleSpec(**kw), 1.0, e, 4) for e in range(4)]

    assert lrs(name="poly", power=1.0) == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert lrs(name="poly", power=2.0) == pytest.approx([1.0, 0.5625, 0.25, 0.0625])
    assert lrs(name="cosine") == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466])
    assert lrs(name="step", step_size=2, gamma=0.1) == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert lrs(name="none", warmup_epochs=2) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert lrs(name="poly", warmup_epochs=1) == pytest.approx([0.5, 1.0, 2 / 3, 1 / 3])


def test_schedule_options_change_the_lr() -> None:
    def lrs(**kw: Any) -> list[float]:
        return [lr_at(LrScheduleSpec(**kw), 1.0, e, 10) for e in range(10)]

    assert lrs(name="poly", power=1.0) != lrs(name="poly", power=2.0)
    assert lrs(name="poly", min_lr=0.0) != lrs(name="poly", min_lr=0.1)
    assert lrs(name="cosine", min_lr=0.0) != lrs(name="cosine", min_lr=0.1)
    assert lrs(name="step", step_size=2) != lrs(name="step", step_size=3)
    assert lrs(name="step", step_size=3, gamma=0.1) != lrs(name="step", step_size=3, gamma=0.5)
    assert lrs(name="none") != lrs(name="none", warmup_epochs=3)


def test_every_param_group_follows_its_own_base_lr() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(
        [{"params": [a]}, {"params": [b], "lr": 1.0}], OptimizerSpec(name="sgd", lr=0.1)
    )
    spec = LrScheduleSpec(name="cosine", warmup_epochs=1)
    sched = build_schedule(opt, spec, 5)
    for epoch in range(5):
        assert opt.param_groups[0]["lr"] == lr_at(spec, 0.1, epoch, 5)
        assert opt.param_groups[1]["lr"] == lr_at(spec, 1.0, epoch, 5)
        sched.step({})


def test_past_the_planned_end_the_final_value_holds() -> None:
    spec = LrScheduleSpec(name="poly", power=0.5, min_lr=0.01)
    assert lr_at(spec, 0.1, 12, 10) == pytest.approx(0.01)


def test_warmup_as_long_as_the_run_does_not_crash() -> None:
    spec = LrScheduleSpec(name="cosine", warmup_epochs=5)
    assert [lr_at(spec, 1.0, e, 5) for e in range(5)] == pytest.approx(
        [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]
    )


def test_zero_epochs_is_an_error() -> None:
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerSpec(name="sgd", lr=0.1))
    with pytest.raises(ValueError, match="epochs"):
        build_schedule(opt, LrScheduleSpec(), 0)


# ---- plateau --------------------------------------------------------------------------------


def test_plateau_reduces_after_patience_bad_epochs_and_not_before() -> None:
    # torch ReduceLROnPlateau semantics: with patience=2 the 1st and 2nd epochs without
    # improvement are tolerated; the 3rd reduces the lr for the epoch after it.
    spec = LrScheduleSpec(name="plateau", patience=2, gamma=0.5)
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.8, 0.85]
    used = _run(spec, losses)
    # epochs 2, 3, 4 are bad -> lr halves from epoch 5; 5, 6, 7 bad again -> halves from 8.
    expected = [0.1] * 5 + [0.05] * 3 + [0.025] * 2
    assert used == pytest.approx(expected, rel=1e-5)


def test_plateau_keeps_the_lr_while_the_loss_improves() -> None:
    spec = LrScheduleSpec(name="plateau", patience=1)
    used = _run(spec, [1.0 - 0.05 * e for e in range(EPOCHS)])
    assert used == pytest.approx([0.1] * EPOCHS, rel=1e-5)


def test_plateau_respects_min_lr() -> None:
    spec = LrScheduleSpec(name="plateau", patience=0, gamma=0.1, min_lr=0.02)
    used = _run(spec, [1.0] * EPOCHS)
    assert used[0] == pytest.approx(0.1)
    assert used[2:] == pytest.approx([0.02] * (EPOCHS - 2), rel=1e-5)


def test_plateau_with_warmup_ignores_warmup_epochs() -> None:
    spec = LrScheduleSpec(name="plateau", patience=2, gamma=0.5, warmup_epochs=2)
    used = _run(spec, [1.0] * EPOCHS)
    # warmup 0.1/3, 0.2/3; plateau starts at epoch 2 (best), bad 3, 4, 5 -> halves from 6.
    expected = [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    assert used == pytest.approx(expected, rel=1e-5)


def test_plateau_needs_test_loss() -> None:
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerSpec(name="sgd", lr=0.1))
    sched = build_schedule(opt, LrScheduleSpec(name="plateau"), 5)
    with pytest.raises(KeyError, match="test_loss"):
        sched.step({"test_acc": 0.5})


# ---- checkpoint / resume --------------------------------------------------------------------

RESUME_LOSSES = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9]


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("name", ["none", "poly", "cosine", "step", "plateau"])
def test_state_dict_round_trip_mid_schedule_continues_identically(name: str, warmup: int) -> None:
    spec = LrScheduleSpec(name=name, warmup_epochs=warmup, patience=2, **SCHEDULE_KW)
    stop_at = 4  # mid-plateau: two bad epochs counted, the reduction still ahead

    def fresh() -> tuple[torch.optim.Optimizer, Any]:
        opt = build_optimizer(
            [torch.nn.Parameter(torch.zeros(1))], OptimizerSpec(name="sgd", lr=BASE_LR)
        )
        return opt, build_schedule(opt, spec, EPOCHS)

    opt, sched = fresh()
    straight = []
    for epoch in range(EPOCHS):
        straight.append(sched.lr)
        sched.step({"test_loss": RESUME_LOSSES[epoch]})

    opt, sched = fresh()
    resumed = []
    for epoch in range(stop_at):
        resumed.append(sched.lr)
        sched.step({"test_loss": RESUME_LOSSES[epoch]})
    lr_at_save = sched.lr
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)

    opt, sched = fresh()  # a new process: new optimizer at the spec lr, new schedule
    sched.load_state_dict(torch.load(buffer, weights_only=False))
    assert sched.lr == lr_at_save
    assert opt.param_groups[0]["lr"] == lr_at_save
    for epoch in range(stop_at, EPOCHS):
        resumed.append(sched.lr)
        sched.step({"test_loss": RESUME_LOSSES[epoch]})
    assert resumed == straight
    if name != "none":
        assert len(set(straight)) > 1  # the schedule did something over the run
