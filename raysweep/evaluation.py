"""Counting over an epoch without leaving the device: loss, accuracy and the confusion matrix
kept per batch (`Batchwise`, one host sync per epoch, summed across DDP ranks), and the
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
    """Per-batch counts, kept on the device until `totals()` (one host sync per epoch).

    A batch costs three kernel launches (argmax, compare, count; the loss tensor is kept as it
    is) and the sums are taken once, in `totals()`. At small batches a GPU step is bound by
    kernel launches (docs/performance.md, "GPU"), and running totals cost ~9 launches a batch."""

    device: torch.device
    num_classes: int
    with_confusion: bool = True
    losses: list[torch.Tensor] = field(default_factory=list)  # batch means
    sizes: list[int] = field(default_factory=list)
    correct: list[torch.Tensor] = field(default_factory=list)
    confusion: list[torch.Tensor] = field(default_factory=list)

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Keep one batch's counts (loss is the batch mean)."""
        pred = logits.argmax(1)
        self.losses.append(mean_loss.detach())
        self.sizes.append(y.numel())
        self.correct.append((pred == y).sum())
        if self.with_confusion:
            k = self.num_classes
            self.confusion.append(torch.bincount(y * k + pred, minlength=k * k))

    def totals(self) -> tuple[float, float, list[list[int]]]:
        """(mean loss, accuracy, confusion matrix) summed over all batches and ranks."""
        k, f64 = self.num_classes, torch.float64
        sums = torch.zeros(3 + k * k, device=self.device, dtype=f64)
        if self.sizes:
            sizes = torch.tensor(self.sizes, dtype=f64).to(self.device, non_blocking=True)
            sums[0] = (torch.stack(self.losses).to(f64) * sizes).sum()
            sums[1] = torch.stack(self.correct).sum()
            sums[2] = sum(self.sizes)
            if self.confusion:
                sums[3:] = torch.stack(self.confusion).sum(0)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)
        values = sums.cpu()
        count = max(values[2].item(), 1.0)
        confusion = values[3:].round().long().view(k, k)
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
