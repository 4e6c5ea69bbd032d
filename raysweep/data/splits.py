"""Choosing samples: seeded stratified train/test splits, `limit_*` subsets and per-rank shards."""

from __future__ import annotations

import math
from typing import Any

import torch

from raysweep.data.contract import ImageData, channel_stats
from raysweep.errors import DatasetError

__all__ = ["apply_limits", "shard", "split", "stratified_split"]


def stratified_split(
    y: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded per-class split: round(n_c * test_fraction) of each class's n_c samples go to test.

    Returns sorted (train_indices, test_indices). Every class keeps at least one train sample.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(
            f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    shuffled = y[order]
    train_parts, test_parts = [], []
    for label in torch.unique(y).tolist():
        members = order[shuffled == label]
        n_test = min(math.floor(len(members) * test_fraction + 0.5), len(members) - 1)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    test_idx = torch.cat(test_parts).sort().values
    if len(test_idx) == 0:
        raise DatasetError(
            f"test_fraction={test_fraction} of {len(y)} images leaves the test split empty: "
            "add images, raise test_fraction, or provide a separate test split"
        )
    return torch.cat(train_parts).sort().values, test_idx


def split(
    x: torch.Tensor, y: torch.Tensor, spec: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_train, y_train, x_test, y_test by the spec's `test_fraction` and `split_seed`."""
    train_idx, test_idx = stratified_split(y, spec.test_fraction, spec.split_seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def apply_limits(
    data: ImageData, limit_train: int | None, limit_test: int | None, seed: int
) -> ImageData:
    """Keep a seeded random subset of `limit_*` images (original order kept); recompute stats."""
    x_train, y_train = _limit(data.x_train, data.y_train, limit_train, seed, "limit_train")
    x_test, y_test = _limit(data.x_test, data.y_test, limit_test, seed + 1, "limit_test")
    mean, std = data.mean, data.std
    if len(x_train) != len(data.x_train):
        mean, std = channel_stats(x_train)
    return ImageData(x_train, y_train, x_test, y_test, data.classes, mean, std, data.name)


def _limit(
    x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if limit is None or limit >= len(x):
        return x, y
    if limit < 1:
        raise DatasetError(f"{what} must be at least 1 (or null for no limit), got {limit}")
    generator = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(x), generator=generator)[:limit].sort().values
    return x[keep].contiguous(), y[keep].contiguous()


def shard(
    data_x: torch.Tensor, data_y: torch.Tensor, rank: int, world_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank `rank`'s 1/`world_size` of a dataset: every `world_size`-th sample from `rank` on.

    Shards differ in size by at most one sample; a DDP loop that needs equal step counts per rank
    should size its epochs on the smallest shard (`len(x) // world_size`).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if len(data_x) != len(data_y):
        raise ValueError(f"x has {len(data_x)} samples but y has {len(data_y)}")
    return data_x[rank::world_size].contiguous(), data_y[rank::world_size].contiguous()
