"""Seed 004's configurable ``NN``: conv-pool feature stages and an MLP head, sized by kwargs.

Registered as ``nn``, so torch.nn is imported here as ``tnn``.

With the defaults and two-entry size lists this is seed 004's code layer for layer (two 3x3
conv + ReLU + 2x2 max-pool stages, a two-hidden-layer MLP). The kwargs add BatchNorm (after
each conv / hidden Linear, before the activation), the activation, and dropout after each
hidden FC activation. Lists may have any length >= 1: one conv-pool stage per entry of
``hidden_channels``, one hidden Linear per entry of ``hidden_neurons``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn as tnn

from raysweep.models.registry import register_model

ACTIVATIONS: dict[str, type[tnn.Module]] = {
    "relu": tnn.ReLU,
    "tanh": tnn.Tanh,
    "softplus": tnn.Softplus,
    "gelu": tnn.GELU,
}


def _sizes(*, value: Sequence[int], name: str) -> tuple[int, ...]:
    """Validate a non-empty list/tuple of positive ints (YAML gives lists)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return tuple(value)


class NN(tnn.Module):
    """Seed 004's NN: ``extractor`` (conv [+BN] + act + pool per stage), ``classifier`` (MLP)."""

    def __init__(
        self,
        *,
        in_channels: int,
        hidden_channels: Sequence[int],
        hidden_neurons: Sequence[int],
        num_classes: int,
        image_size: int,
        batchnorm: bool,
        activation: str,
        dropout: float,
    ) -> None:
        """One conv stage per ``hidden_channels`` entry, one hidden Linear per ``hidden_neurons``.

        Raises:
            ValueError: for empty or non-positive sizes, an unknown activation, a dropout
                outside [0, 1], or an image too small for ``len(hidden_channels)`` pools.
        """
        super().__init__()
        channels = _sizes(value=hidden_channels, name="hidden_channels")
        neurons = _sizes(value=hidden_neurons, name="hidden_neurons")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
            )
        act = ACTIVATIONS[activation]
        side = image_size // 2 ** len(channels)
        if side < 1:
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling stages"
            )

        features: list[tnn.Module] = []
        prev = in_channels
        for width in channels:
            features.append(tnn.Conv2d(prev, width, 3, padding=1))
            if batchnorm:
                features.append(tnn.BatchNorm2d(width))
            features += [act(), tnn.MaxPool2d(2, 2)]
            prev = width
        self.extractor = tnn.Sequential(*features)

        head: list[tnn.Module] = []
        prev = channels[-1] * side * side
        for width in neurons:
            head.append(tnn.Linear(prev, width))
            if batchnorm:
                head.append(tnn.BatchNorm1d(width))
            head.append(act())
            if dropout > 0:
                head.append(tnn.Dropout(dropout))
            prev = width
        head.append(tnn.Linear(prev, num_classes))
        self.classifier = tnn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.extractor(x), 1))


@register_model
def nn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    hidden_channels: tuple[int, ...] = (16, 32),
    hidden_neurons: tuple[int, ...] = (128, 128),
    batchnorm: bool = False,
    activation: str = "relu",
    dropout: float = 0.0,
) -> tnn.Module:
    """seed 004: NN, 2 conv (16, 32) + pool stages and an MLP (128, 128), all sizes configurable.

    ``activation`` is one of relu, tanh, softplus, gelu; ``batchnorm`` adds BatchNorm after each
    conv and hidden Linear; ``dropout`` follows each hidden FC activation.
    """
    return NN(
        in_channels=in_channels,
        hidden_channels=hidden_channels,
        hidden_neurons=hidden_neurons,
        num_classes=num_classes,
        image_size=image_size,
        batchnorm=batchnorm,
        activation=activation,
        dropout=dropout,
    )
