"""Seed 003's plain CNNs: ``basic_cnn`` (3 conv + 2 FC) and ``improved_cnn`` (6 conv, BN, dropout).

The report gives basic_cnn's code; improved_cnn is only described ("adds BatchNorm and Dropout;
6 conv layers, a BatchNorm after every conv; Dropout 0.5 in the FC layers; 12,906,250
parameters"). The layout here was found by searching plausible widths and reproduces that
count exactly at 3x32x32: conv 64-128 | 256-256 | 512-512 (3x3, BN, ReLU; max-pool after each
pair), then Dropout -> Linear(512*4*4, 1024) -> BatchNorm1d -> ReLU -> Dropout -> Linear(1024, k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysweep.models.registry import register_model


def _pooled_side(*, image_size: int, pools: int, model: str) -> int:
    side = image_size // 2**pools
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for {model} (needs >= {2**pools})")
    return side


class BasicCNN(nn.Module):
    """Seed 003's BasicCNN, layer for layer: 3 conv (32, 64, 128) each + ReLU + pool, 2 FC."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        side = _pooled_side(image_size=image_size, pools=3, model="basic_cnn")
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc1 = nn.Linear(128 * side * side, 512)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def _conv_bn_relu(*, in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class ImprovedCNN(nn.Module):
    """Three stages of two conv-BN-ReLU + max-pool, then a BN + dropout FC head."""

    widths: tuple[tuple[int, int], ...] = ((64, 128), (256, 256), (512, 512))
    hidden: int = 1024

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, dropout: float
    ) -> None:
        super().__init__()
        side = _pooled_side(image_size=image_size, pools=len(self.widths), model="improved_cnn")
        layers: list[nn.Module] = []
        prev = in_channels
        for first, second in self.widths:
            layers += _conv_bn_relu(in_channels=prev, out_channels=first)
            layers += _conv_bn_relu(in_channels=first, out_channels=second)
            layers.append(nn.MaxPool2d(2, 2))
            prev = second
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(prev * side * side, self.hidden),
            nn.BatchNorm1d(self.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(self.hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def basic_cnn(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """seed 003: BasicCNN, 3 conv (32, 64, 128) + 2 FC (512), ReLU and max pooling."""
    return BasicCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@register_model
def improved_cnn(
    *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.5
) -> nn.Module:
    """seed 003: ImprovedCNN, 6 conv with BatchNorm + FC head with Dropout 0.5 (12,906,250 params).

    Layout (reconstructed, matches the reported count): conv 64-128 | 256-256 | 512-512 with
    max-pool after each pair, Linear(512*s*s, 1024) + BatchNorm1d, Linear(1024, classes);
    ``dropout`` before each of the two Linear layers.
    """
    return ImprovedCNN(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, dropout=dropout
    )
