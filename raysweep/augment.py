"""Per-batch augmentation and normalization, on whatever device the batch already lives on.

The dataset stays uint8 (on the GPU when it fits); `BatchTransform` turns each uint8 batch into a
normalized float batch. Augmentations are vectorized over the batch (no Python loop per image)
and draw their random numbers from a caller-supplied generator, so a seeded run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("crop", "flip")

# As torchvision's RandomCrop(size, padding=4) in the standard CIFAR recipe.
CROP_PADDING = 4


class BatchTransform:
    """uint8 (B,C,H,W) batch on device -> float normalized batch on the same device."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Sequence[str],
        device: torch.device | str,
        channels_last: bool = False,
    ) -> None:
        """`mean`/`std` are per-channel fractions of 255 (as in `ImageData`); `augment` lists
        names from `AUGMENTATIONS`, applied in order to training batches only."""
        unknown = [name for name in augment if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}"
            )
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.augment = list(augment)
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    def __call__(
        self, x_uint8: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augment (when `train`) then normalize: (x / 255 - mean) / std, as float32.

        `generator` must live on the batch's device; None uses torch's global RNG.
        """
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise ValueError(
                f"expected a uint8 (B, C, H, W) batch, got {x_uint8.dtype} {tuple(x_uint8.shape)}"
            )
        if x_uint8.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"batch has {x_uint8.shape[1]} channels, mean/std have {self.mean.shape[1]}"
            )
        x = x_uint8
        if train:
            for name in self.augment:
                if name == "crop":
                    x = random_crop(x, CROP_PADDING, generator)
                else:
                    x = random_flip(x, generator)
        # Formatting the uint8 batch is 4x cheaper than the float one; the elementwise ops
        # below keep its memory format.
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=memory_format)
        mean, std = self._stats_on(x.device)
        return (x.float() / 255.0 - mean) / std

    def _stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean.device != device:
            # The batch decides the device; move the stats once rather than the batch.
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self.mean, self.std


def random_crop(
    x: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad by `padding` on each side, then crop back to H x W at a random offset per image.

    Output image b is the padded image's window at (dy[b], dx[b]), dy and dx in [0, 2 * padding]:
    one gather over the flattened pixels for the whole batch.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    flat = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # (B, H, W) into padded rows
    index = flat.view(b, 1, h * w).expand(b, c, h * w)
    return padded.view(b, c, -1).gather(2, index).view(b, c, h, w)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
