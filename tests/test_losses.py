"""Losses: each named loss computes what its name says, and its options are applied."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from raysweep.losses import LOSS_NAMES, build_loss
from raysweep.sections import LossSpec

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
TARGETS = torch.tensor([0, 2])


def _log_softmax(row: list[float]) -> list[float]:
    log_z = math.log(sum(math.exp(v) for v in row))
    return [v - log_z for v in row]


def test_cross_entropy_without_smoothing_is_plain_cross_entropy() -> None:
    loss = build_loss(LossSpec(), 3)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(F.cross_entropy(LOGITS, TARGETS).item())


def test_label_smoothing_matches_the_formula_by_hand() -> None:
    eps, k = 0.1, 3
    expected = 0.0
    for row, target in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True):
        logp = _log_softmax(row)
        expected += -(1 - eps) * logp[target] - eps / k * sum(logp)
    expected /= len(TARGETS)
    loss = build_loss(LossSpec(label_smoothing=eps), k)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_changes_the_loss() -> None:
    plain = build_loss(LossSpec(), 3)(LOGITS, TARGETS).item()
    smooth = build_loss(LossSpec(label_smoothing=0.2), 3)(LOGITS, TARGETS).item()
    assert smooth != pytest.approx(plain, rel=1e-3)


def test_mse_is_softmax_against_one_hot_by_hand() -> None:
    squares = []
    for row, target in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True):
        probs = [math.exp(v) for v in _log_softmax(row)]
        squares += [(p - (1.0 if c == target else 0.0)) ** 2 for c, p in enumerate(probs)]
    expected = sum(squares) / len(squares)  # mean over batch x classes
    loss = build_loss(LossSpec(name="mse"), 3)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mse_with_the_wrong_number_of_classes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="classes"):
        build_loss(LossSpec(name="mse"), 4)(LOGITS, TARGETS)


def test_multi_margin_is_the_multiclass_hinge() -> None:
    margin = 1.5
    expected = 0.0
    for row, target in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True):
        terms = [max(0.0, margin - row[target] + v) for c, v in enumerate(row) if c != target]
        expected += sum(terms) / len(row)
    expected /= len(TARGETS)
    loss = build_loss(LossSpec(name="multi_margin", margin=margin), 3)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(
        F.multi_margin_loss(LOGITS, TARGETS, margin=margin).item(), rel=1e-6
    )


def test_margin_is_applied() -> None:
    one = build_loss(LossSpec(name="multi_margin", margin=1.0), 3)(LOGITS, TARGETS).item()
    two = build_loss(LossSpec(name="multi_margin", margin=2.0), 3)(LOGITS, TARGETS).item()
    assert two > one


def test_the_three_losses_differ() -> None:
    values = {
        name: build_loss(LossSpec(name=name), 3)(LOGITS, TARGETS).item() for name in LOSS_NAMES
    }
    assert len({round(v, 6) for v in values.values()}) == len(LOSS_NAMES), values


@pytest.mark.parametrize("name", ["mse", "multi_margin"])
def test_label_smoothing_on_another_loss_is_refused(name: str) -> None:
    # The config refuses it too; model_construct skips that check to reach build_loss's own.
    spec = LossSpec.model_construct(name=name, label_smoothing=0.1, margin=1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        build_loss(spec, 3)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_is_a_differentiable_scalar_and_picklable(name: str) -> None:
    logits = LOGITS.clone().requires_grad_(True)
    loss_fn = build_loss(LossSpec(name=name), 3)
    loss = loss_fn(logits, TARGETS)
    assert loss.dim() == 0
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # Ray ships the training function to workers; the loss must survive plain pickle.
    again = pickle.loads(pickle.dumps(loss_fn))
    assert again(LOGITS, TARGETS).item() == pytest.approx(loss.item())


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_training_with_each_loss_lowers_it(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = torch.randint(0, 3, (64,))
    model = torch.nn.Linear(4, 3)
    loss_fn = build_loss(LossSpec(name=name), 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    start = loss_fn(model(x), y).item()
    for _ in range(20):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    assert loss_fn(model(x), y).item() < start
