"""`load_dataset`: a spec's `ImageData`, decoded by its registered format on a cache miss."""

from __future__ import annotations

from typing import Any

from raysweep.data.cache import cache_lock, cache_path, read_cache, to_cache_dict, write_cache
from raysweep.data.contract import ImageData
from raysweep.data.registry import get_format
from raysweep.data.splits import apply_limits

__all__ = ["load_dataset"]


def load_dataset(spec: Any) -> ImageData:
    """Load the dataset `spec` describes, decoding it on the first call and caching the tensors.

    Later calls with a spec that yields the same tensors read `cache_path(spec)` instead of the
    source files. `limit_train` / `limit_test` are applied after the cache, so changing them
    never re-decodes. Raises `DatasetError` for anything the user has to fix.
    """
    fmt = get_format(spec.name)
    path = cache_path(spec)
    cached = read_cache(path)
    if cached is None:
        # One process per node downloads and decodes; the others wait, then read its file.
        with cache_lock(path):
            cached = read_cache(path)
            if cached is None:
                x_train, y_train, x_test, y_test, classes = fmt.decode(spec)
                cached = to_cache_dict(spec.name, x_train, y_train, x_test, y_test, classes)
                write_cache(path, cached)
    data = ImageData(
        x_train=cached["x_train"],
        y_train=cached["y_train"],
        x_test=cached["x_test"],
        y_test=cached["y_test"],
        classes=list(cached["classes"]),
        mean=tuple(cached["mean"]),
        std=tuple(cached["std"]),
        name=spec.name,
    )
    return apply_limits(data, spec.limit_train, spec.limit_test, spec.split_seed)
