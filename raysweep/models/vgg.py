"""VGG-style networks: seed 000's 6-conv ``vgg`` and seed 003's VGG-11 ``vgg_a``.

``vgg`` (report: "9 learned layers: 6 conv + 3 FC, stacked 3x3 convolutions", layout not given)
is three blocks of two 3x3 convs (64, 128, 256) + max-pool and a 512-512-classes dropout head.
``vgg_a`` is VGG-11's conv layout with a 512-512-classes classifier; its pools use
``ceil_mode=True`` and an adaptive average pool to 1x1 precedes the classifier, so a 28x28 input
ends at 1x1 instead of vanishing (at 32x32 both are no-ops and the count is VGG-11's).
"""

from __future__ import annotations

import torch
from torch import nn

from raysweep.models.registry import register_model

#: Seed 000's ``vgg``: three blocks of two 3x3 convs, "M" = max-pool.
VGG_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, "M")

#: VGG-11 ("configuration A"): conv widths, "M" = max-pool.
VGG_A_LAYOUT: tuple[int | str, ...] = (
    64,
    "M",
    128,
    "M",
    256,
    256,
    "M",
    512,
    512,
    "M",
    512,
    512,
    "M",
)


def _pooled_side(*, layout: tuple[int | str, ...], image_size: int, ceil_mode: bool) -> int:
    """The feature map's side after the layout's 2x2 max-pools.

    Raises:
        ValueError: if the image is too small for that many pools.
    """
    side = image_size
    for _ in range(layout.count("M")):
        side = -(-side // 2) if ceil_mode else side // 2
    if side < 1:
        pools = layout.count("M")
        raise ValueError(
            f"image_size {image_size} is too small for {pools} max-pools (needs >= {2**pools})"
        )
    return side


class VGG(nn.Module):
    """Conv features (3x3 conv [+ BN] + ReLU, "M" = 2x2 max-pool) and a 3-layer classifier."""

    def __init__(
        self,
        *,
        layout: tuple[int | str, ...],
        in_channels: int,
        num_classes: int,
        image_size: int,
        hidden: int,
        dropout: float,
        batchnorm: bool,
        ceil_mode: bool,
        global_pool: bool,
    ) -> None:
        """``global_pool`` adds an adaptive average pool to 1x1 before the classifier.

        Raises:
            ValueError: if ``image_size`` is too small for the layout's pools.
        """
        super().__init__()
        side = _pooled_side(layout=layout, image_size=image_size, ceil_mode=ceil_mode)
        flat_side = 1 if global_pool else side
        layers: list[nn.Module] = []
        prev = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
                continue
            assert isinstance(item, int)
            layers.append(nn.Conv2d(prev, item, 3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            prev = item
        if global_pool:
            layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(prev * flat_side * flat_side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def vgg(*, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """seed 000: VGG-style net, 9 learned layers (6 conv + 3 FC), stacked 3x3 convs; reconstructed.

    Conv 64-64 | 128-128 | 256-256 with a max-pool after each pair, then Linear(256*s*s, 512),
    Linear(512, 512), Linear(512, classes) with ReLU and ``dropout`` after the hidden ones.
    """
    return VGG(
        layout=VGG_LAYOUT,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        hidden=512,
        dropout=dropout,
        batchnorm=False,
        ceil_mode=False,
        global_pool=False,
    )


@register_model
def vgg_a(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """seed 003: VGG-A (VGG-11), 8 conv (64-512) + 3 FC (512, 512), optional BatchNorm.

    ``batchnorm`` adds BatchNorm2d after each conv (before ReLU); ``dropout`` (off by default, as
    in the report's classifier) applies after the two hidden Linear layers.
    """
    return VGG(
        layout=VGG_A_LAYOUT,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        hidden=512,
        dropout=dropout,
        batchnorm=batchnorm,
        ceil_mode=True,
        global_pool=True,
    )
