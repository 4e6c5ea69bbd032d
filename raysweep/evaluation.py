"""Counting over an epoch without leaving the device: loss, accuracy and the confusion matrix
summed per batch (`Batchwise`, one host sync per epoch, summed across DDP ranks), and the
eval-mode pass over a set of images (`evaluate`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from raysweep.augment import BatchTransform
from raysweep.device import autocast


@dataclass
class Batchwise:
    """Sums over an epoch, kept on the device until `totals()` (one host sync per epoch)."""

    device: torch.device
    num_classes: int
    with_confusion: bool = True
    loss: torch.Tensor = field(init=False)
    correct: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    confusion: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.loss = torch.zeros((), device=self.device, dtype=torch.float64)
        self.correct = torch.zeros((), device=self.device, dtype=torch.float64)
        self.count = torch.zeros((), device=self.device, dtype=torch.float64)
        self.confusion = torch.zeros(
            self.num_classes * self.num_classes, device=self.device, dtype=torch.float64
        )

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Accumulate one batch (loss is the batch mean)."""
        pred = logits.argmax(1)
        n = y.numel()
        self.loss += mean_loss.detach().double() * n
        self.correct += (pred == y).sum()
        self.count += n
        if self.with_confusion:
            self.confusion += torch.bincount(
                y * self.num_classes + pred, minlength=self.num_classes**2
            ).double()

    def totals(self) -> tuple[float, float, list[list[int]]]:
        """(mean loss, accuracy, confusion matrix) summed over all ranks."""
        packed = torch.cat([torch.stack([self.loss, self.correct, self.count]), self.confusion])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(packed)
        values = packed.cpu()
        count = max(values[2].item(), 1.0)
        confusion = values[3:].round().long().view(self.num_classes, self.num_classes)
        return values[0].item() / count, values[1].item() / count, confusion.tolist()


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    transform: BatchTransform,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
    num_classes: int,
    amp: bool,
) -> tuple[float, float, list[list[int]]]:
    """Mean loss, accuracy and confusion matrix over (x, y), summed across ranks."""
    model.eval()
    sums = Batchwise(x.device, num_classes)
    with torch.inference_mode(), autocast(x.device, amp):
        for start in range(0, len(x), batch_size):
            xb = transform(x[start : start + batch_size], train=False)
            yb = y[start : start + batch_size]
            logits = model(xb).float()
            sums.add(loss_fn(logits, yb), logits, yb)
    return sums.totals()
