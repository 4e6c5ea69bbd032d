"""Seed 000's AlexNet for small images: 5 conv + 3 FC with ReLU and dropout.

The report only says "8 learned layers: 5 conv + 3 FC, ReLU" (trained on Fashion-MNIST,
1x28x28). This is a small-image AlexNet: the classic 64-192-384-256-256 channel widths with 3x3
kernels (padding 1) and max-pools after conv 1, 2 and 5, then Dropout -> Linear(256*s*s, 1024)
-> ReLU -> Dropout -> Linear(1024, 512) -> ReLU -> Linear(512, classes), as torchvision orders it.
"""

from __future__ import annotations

import torch
from torch import nn

from raysweep.models.registry import register_model


class AlexNet(nn.Module):
    """AlexNet with 3x3 kernels: features (5 conv, 3 pools) and a 3-layer dropout classifier."""

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, dropout: float
    ) -> None:
        super().__init__()
        side = image_size // 8
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for alexnet (needs >= 8)")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * side * side, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def alexnet(
    *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.5
) -> nn.Module:
    """seed 000: AlexNet, 8 learned layers (5 conv + 3 FC), ReLU; layout reconstructed.

    ``dropout`` applies before the first two Linear layers.
    """
    return AlexNet(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, dropout=dropout
    )
