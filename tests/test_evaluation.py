"""Batchwise: the per-batch counts it keeps sum to what one pass over all the data gives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raysweep.evaluation import Batchwise


def test_totals_match_a_single_pass_over_batches_of_unequal_size() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(70, 4, generator=g)
    y = torch.randint(0, 4, (70,), generator=g)
    sums = Batchwise(torch.device("cpu"), 4)
    for start in range(0, 70, 32):  # 32, 32, 6
        lb, yb = logits[start : start + 32], y[start : start + 32]
        sums.add(F.cross_entropy(lb, yb), lb, yb)
    loss, acc, confusion = sums.totals()
    assert abs(loss - F.cross_entropy(logits, y).item()) < 1e-6
    assert acc == (logits.argmax(1) == y).sum().item() / 70
    expected = torch.zeros(4, 4, dtype=torch.long)
    for truth, pred in zip(y.tolist(), logits.argmax(1).tolist(), strict=True):
        expected[truth, pred] += 1
    assert confusion == expected.tolist()


def test_no_batches_gives_zeros_and_without_confusion_an_empty_matrix() -> None:
    assert Batchwise(torch.device("cpu"), 3).totals() == (0.0, 0.0, [[0] * 3] * 3)
    sums = Batchwise(torch.device("cpu"), 2, with_confusion=False)
    sums.add(torch.tensor(0.5), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    assert sums.totals() == (0.5, 0.5, [[0, 0], [0, 0]])
