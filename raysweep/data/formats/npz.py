"""`npz`: a numpy archive with `x`, `y` and optionally `x_test`, `y_test`, `classes`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysweep.data.contract import Decoded
from raysweep.data.registry import register_dataset
from raysweep.data.resizing import resize
from raysweep.data.spec import required_path, target_size
from raysweep.data.splits import split
from raysweep.errors import DatasetError

__all__ = ["decode_npz", "npz_source"]

_WHAT = "an .npz file"


def _existing_file(spec: Any) -> Path:
    path = required_path(spec, _WHAT)
    if not path.is_file():
        raise DatasetError(f"npz file not found: {path}; set `path` to an existing .npz file")
    return path


def npz_source(spec: Any) -> dict[str, Any]:
    """The cache-key entries: the file, its size and modification time (never its contents)."""
    path = _existing_file(spec)
    stat = path.stat()
    return {"path": str(path), "source": [stat.st_size, stat.st_mtime_ns]}


@register_dataset("npz", cache_fields=("test_fraction", "split_seed"), source=npz_source)
def decode_npz(spec: Any) -> Decoded:
    """Read the archive's arrays; without `x_test`/`y_test`, split by `test_fraction`."""
    path = _existing_file(spec)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise DatasetError(
            f"cannot read {path} as an .npz archive ({exc}); write it with numpy.savez "
            "(arrays only: store `classes` as a string array, not a list of objects)"
        ) from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(
                f"{path} has no {key!r} array (found {sorted(arrays)}); it needs 'x' (images) and "
                "'y' (int labels), optionally 'x_test', 'y_test' and 'classes'"
            )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"{path}: 'x_test' and 'y_test' must be given together")
    size = target_size(spec)
    x = resize(_npz_images(arrays["x"], path, "x"), size)
    y = _npz_labels(arrays["y"], len(x), path, "y")
    if "x_test" in arrays:
        x_test = resize(_npz_images(arrays["x_test"], path, "x_test"), size)
        y_test = _npz_labels(arrays["y_test"], len(x_test), path, "y_test")
        x_train, y_train = x, y
    else:
        x_train, y_train, x_test, y_test = split(x, y, spec)
    num_labels = int(max(y_train.max(), y_test.max())) + 1
    if "classes" in arrays:
        classes = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1).tolist()]
        if len(classes) < num_labels:
            raise DatasetError(
                f"{path}: 'classes' names {len(classes)} classes but labels go up to "
                f"{num_labels - 1}; name every class (labels are indices into 'classes')"
            )
    else:
        classes = [str(i) for i in range(num_labels)]
    return x_train, y_train, x_test, y_test, classes


def _npz_images(array: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """Images of shape (N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or floats in [0, 1] -> uint8 NCHW."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        array = _to_nchw(array, path, key)
    else:
        raise DatasetError(
            f"{path}: {key!r} has shape {array.shape}; expected (N, H, W), (N, H, W, C) "
            "or (N, C, H, W)"
        )
    if array.dtype == np.uint8:
        out = array
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (not np.isfinite(array).all() or array.min() < 0 or array.max() > 1):
            raise DatasetError(
                f"{path}: float {key!r} must lie in [0, 1] (found {array.min()}..{array.max()}); "
                "scale it, or store uint8 0..255"
            )
        out = np.rint(array * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f"{path}: integer {key!r} must lie in 0..255; store it as uint8")
        out = array.astype(np.uint8)
    else:
        raise DatasetError(f"{path}: {key!r} has dtype {array.dtype}; use uint8 or float in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(out))


def _to_nchw(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    # A channel axis holds at most 4 values (grey, RGB, RGBA); when both ends could be channels,
    # the layout that leaves square images wins, then NHWC (numpy/PIL's own layout).
    first, last = array.shape[1] <= 4, array.shape[3] <= 4
    if first and last:
        if array.shape[2] == array.shape[3] and array.shape[1] != array.shape[2]:
            return array
        return array.transpose(0, 3, 1, 2)
    if last:
        return array.transpose(0, 3, 1, 2)
    if first:
        return array
    raise DatasetError(
        f"{path}: cannot tell the channel axis of {key!r} with shape {array.shape}; use "
        "(N, H, W, C) or (N, C, H, W) with C in 1..4"
    )


def _npz_labels(array: np.ndarray, count: int, path: Path, key: str) -> torch.Tensor:
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: {key!r} must hold integer class indices, got {array.dtype}")
    array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.shape != (count,):
        raise DatasetError(
            f"{path}: {key!r} has shape {array.shape} but there are {count} images; "
            "give one label per image"
        )
    if array.size and array.min() < 0:
        raise DatasetError(f"{path}: {key!r} has negative labels; use class indices 0..K-1")
    return torch.from_numpy(array.astype(np.int64))
