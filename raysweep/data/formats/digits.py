"""`digits`: scikit-learn's 1,797 handwritten 8x8 digits (offline), split per class."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from raysweep.data.contract import Decoded
from raysweep.data.registry import register_dataset
from raysweep.data.resizing import resize
from raysweep.data.spec import target_size
from raysweep.data.splits import split


@register_dataset("digits", cache_fields=("test_fraction", "split_seed"), default_image_size=32)
def decode_digits(spec: Any) -> Decoded:
    """Scale sklearn's 0..16 values to 0..255, resize, split by `test_fraction`/`split_seed`."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # sklearn's digits are 8x8 with values 0..16.
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    x = resize(torch.from_numpy(images).unsqueeze(1), target_size(spec))
    y = torch.from_numpy(bunch.target.astype(np.int64))
    x_train, y_train, x_test, y_test = split(x, y, spec)
    return x_train, y_train, x_test, y_test, [str(i) for i in range(10)]
