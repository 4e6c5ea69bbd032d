"""`synthetic`: seeded, learnable random images (a noisy smooth prototype per class)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from raysweep.data.contract import Decoded
from raysweep.data.registry import register_dataset
from raysweep.data.spec import target_size
from raysweep.errors import DatasetError


@register_dataset(
    "synthetic",
    cache_fields=("num_train", "num_test", "num_classes", "channels", "split_seed"),
    default_image_size=32,
)
def decode_synthetic(spec: Any) -> Decoded:
    """Learnable noise: each class is a smooth random prototype; samples add Gaussian noise."""
    size = target_size(spec)
    assert size is not None
    if spec.num_classes < 2 or spec.channels < 1 or spec.num_train < 1 or spec.num_test < 1:
        raise DatasetError(
            "synthetic data needs num_classes >= 2 and channels, num_train, num_test >= 1"
        )
    generator = torch.Generator().manual_seed(spec.split_seed)
    # Low-resolution prototypes upsampled: survive crop/flip augmentation, unlike pixel noise.
    coarse = torch.rand(spec.num_classes, spec.channels, 4, 4, generator=generator) * 255.0
    prototypes = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(count) % spec.num_classes)[
            torch.randperm(count, generator=generator)
        ]
        noise = torch.randn(count, spec.channels, size, size, generator=generator) * 40.0
        images = (prototypes[labels] + noise).round_().clamp_(0, 255).to(torch.uint8)
        return images, labels

    x_train, y_train = sample(spec.num_train)
    x_test, y_test = sample(spec.num_test)
    return x_train, y_train, x_test, y_test, [str(i) for i in range(spec.num_classes)]
