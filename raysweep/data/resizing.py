"""Resizing uint8 image batches: the one resize the formats (and `raysweep predict`) use."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raysweep.data.contract import CHUNK

__all__ = ["resize"]


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinearly (antialiased) resize uint8 (N, C, H, W) images to size x size; None: unchanged."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(x), CHUNK):
        chunk = x[start : start + CHUNK].to(torch.float32)
        chunk = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out
