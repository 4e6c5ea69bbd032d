"""LeNet-5 (seeds 001 and 002): two 5x5 conv + max-pool stages and a 120-84-classes MLP."""

from __future__ import annotations

import torch
from torch import nn

from raysweep.models.registry import register_model


class LeNet(nn.Module):
    """LeNet-5 with ReLU and max pooling; optional dropout between the FC layers."""

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, dropout: float
    ) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2  # two valid 5x5 convs, each followed by pool 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for lenet (needs >= 14)")
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.dropout(self.relu(self.fc1(x)))
        x = self.dropout(self.relu(self.fc2(x)))
        return self.fc3(x)


@register_model
def lenet(
    *, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.0
) -> nn.Module:
    """seed 001/002: LeNet-5, 2 conv (6, 16; 5x5) + 3 FC (120, 84); seed 001 tried dropout 0.5.

    ``dropout`` applies after each hidden FC activation (0 disables it).
    """
    return LeNet(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, dropout=dropout
    )
