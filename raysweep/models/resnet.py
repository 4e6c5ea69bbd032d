"""Residual networks: seed 001's CIFAR ResNet-18 and seed 003's ``residual_cnn``.

Both use seed 003's residual block (two 3x3 conv + BN, identity or 1x1-projection shortcut).
``residual_cnn`` is only described in the report ("residual blocks ... 2,816,074 parameters");
the layout here was found by searching plausible layouts and reproduces that count exactly at
3x32x32: a 3x3 conv stem (16 channels, bias, ReLU), stages 64/128/256 of two blocks each
(strides 1/2/2), global average pool, Linear(256, 256) -> BatchNorm1d -> ReLU -> Dropout ->
Linear(256, classes). Both models pool globally, so their size does not depend on image_size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysweep.models.registry import register_model


class ResidualBlock(nn.Module):
    """Seed 003's block (CIFAR ResNet BasicBlock): relu(bn2(conv2(relu(bn1(conv1(x))))) + sc(x)).

    The shortcut ``sc`` is the identity, or a 1x1 conv + BN when the stride or width changes.
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _stage(*, in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` residual blocks; the first one changes width and stride."""
    layers = [ResidualBlock(in_channels=in_channels, out_channels=out_channels, stride=stride)]
    layers += [
        ResidualBlock(in_channels=out_channels, out_channels=out_channels, stride=1)
        for _ in range(blocks - 1)
    ]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """Stem, residual stages, global average pool and a classifier head."""

    def __init__(
        self,
        *,
        stem: nn.Module,
        stem_channels: int,
        stages: tuple[tuple[int, int, int], ...],
        head: nn.Module,
    ) -> None:
        """``stages`` holds (width, blocks, stride) per stage; ``head`` maps features to logits."""
        super().__init__()
        self.stem = stem
        layers = []
        prev = stem_channels
        for width, blocks, stride in stages:
            layers.append(
                _stage(in_channels=prev, out_channels=width, blocks=blocks, stride=stride)
            )
            prev = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))


@register_model
def resnet18(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """seed 001: CIFAR-style ResNet-18, 3x3 stem + 4 stages (64-512) x 2 basic blocks.

    No stem max-pool; global average pooling, so ``image_size`` does not change the model.
    """
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
    )
    stages = ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))
    return ResNet(stem=stem, stem_channels=64, stages=stages, head=nn.Linear(512, num_classes))


@register_model
def residual_cnn(
    *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.5
) -> nn.Module:
    """seed 003: ResidualCNN, residual blocks with identity/projection shortcuts (2,816,074 params).

    Layout (reconstructed, matches the reported count): conv stem 16, stages 64/128/256 x 2
    blocks, global average pool, Linear(256, 256) + BatchNorm1d + ReLU + Dropout(``dropout``),
    Linear(256, classes).
    """
    stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(inplace=True))
    stages = ((64, 2, 1), (128, 2, 2), (256, 2, 2))
    head = nn.Sequential(
        nn.Linear(256, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )
    return ResNet(stem=stem, stem_channels=16, stages=stages, head=head)
