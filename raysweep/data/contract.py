"""What every dataset is: `ImageData`, a decoder's output (`Decoded`) and the checks on it.

A format's decoder returns uint8 (N, C, H, W) train and test images, their labels and the class
names (`Decoded`); `check_decoded` guards the invariants every consumer relies on, and
`channel_stats` gives the per-channel statistics `ImageData` carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from raysweep.errors import DatasetError

__all__ = ["CHUNK", "Decoded", "ImageData", "channel_stats", "check_decoded"]

#: Images per chunk when resizing or computing statistics, to bound the float working memory.
CHUNK = 4096

#: A decoder's result: x_train, y_train, x_test, y_test, class names.
Decoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


@dataclass
class ImageData:
    """A dataset held in memory: uint8 (N, C, H, W) images, int64 labels, channel statistics."""

    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, classes={self.num_classes})"
        )


def check_decoded(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    classes: list[str],
) -> None:
    """Guard the invariants every consumer relies on (decoders validate user input earlier)."""
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) == 0:
            raise DatasetError(f"dataset {name!r} has no {split} images")
        assert x.dtype == torch.uint8 and x.dim() == 4 and len(x) == len(y), (x.shape, y.shape)
        if x.shape[2] != x.shape[3]:
            raise DatasetError(
                f"dataset {name!r}: {split} images are {x.shape[2]}x{x.shape[3]}; set "
                "`image_size` to resize them to a square"
            )
        if int(y.min()) < 0 or int(y.max()) >= len(classes):
            raise DatasetError(
                f"dataset {name!r}: {split} labels must lie in 0..{len(classes) - 1} "
                f"(one per class), found {int(y.min())}..{int(y.max())}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"dataset {name!r}: train images are {tuple(x_train.shape[1:])} but test images are "
            f"{tuple(x_test.shape[1:])}; they must have the same channels and size"
        )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1].

    A constant channel gets std 1/255 rather than 0, so normalizing never divides by zero.
    """
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), CHUNK):
        chunk = x[start : start + CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count / 255.0
    var = (squares / count / 255.0**2 - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1.0 / 255.0)
    return tuple(mean.tolist()), tuple(std.tolist())
