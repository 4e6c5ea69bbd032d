"""Training losses named in a sweep file.

`build_loss` turns a `LossSpec` into a callable ``loss(logits, targets) -> scalar tensor``,
where `targets` are int64 class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

LOSS_NAMES = ("cross_entropy", "mse", "multi_margin")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float
) -> torch.Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def _softmax_mse(logits: torch.Tensor, targets: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    if logits.shape[-1] != num_classes:
        raise ValueError(
            f"mse loss: logits have {logits.shape[-1]} classes, expected {num_classes}"
        )
    probs = torch.softmax(logits, dim=-1)
    one_hot = F.one_hot(targets, num_classes).to(probs.dtype)
    return F.mse_loss(probs, one_hot)


def _multi_margin(logits: torch.Tensor, targets: torch.Tensor, *, margin: float) -> torch.Tensor:
    return F.multi_margin_loss(logits, targets, margin=margin)


def build_loss(spec: Any, num_classes: int) -> LossFn:
    """Return the loss named by `spec` for a `num_classes`-way classifier.

    - cross_entropy: `F.cross_entropy` with ``spec.label_smoothing``;
    - mse: mean squared error between ``softmax(logits)`` and one-hot targets, averaged over
      all batch x class elements;
    - multi_margin: multi-class hinge loss, `F.multi_margin_loss` with ``spec.margin``.

    Raises ValueError for label smoothing on a loss other than cross_entropy (it would be
    silently ignored) and for an unknown name.
    """
    name = spec.name
    label_smoothing = float(spec.label_smoothing)
    if name != "cross_entropy" and label_smoothing != 0.0:
        raise ValueError(
            f"label_smoothing={label_smoothing} only applies to the cross_entropy loss, "
            f"not {name!r}"
        )
    if name == "cross_entropy":
        return partial(_cross_entropy, label_smoothing=label_smoothing)
    if name == "mse":
        return partial(_softmax_mse, num_classes=int(num_classes))
    if name == "multi_margin":
        return partial(_multi_margin, margin=float(spec.margin))
    raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSS_NAMES)}")
