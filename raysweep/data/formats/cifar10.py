"""`cifar10`: CIFAR-10's python-format pickled batches, read with a numpy-only unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysweep.data.contract import Decoded
from raysweep.data.download import fetch_or_fail
from raysweep.data.registry import register_dataset
from raysweep.data.resizing import resize
from raysweep.data.spec import expand, root_source, target_size
from raysweep.errors import DatasetError

__all__ = ["CIFAR10_DIR", "CIFAR10_FILES", "decode_cifar10"]

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]


@register_dataset("cifar10", source=root_source)
def decode_cifar10(spec: Any) -> Decoded:
    """Read `<root>/cifar-10-batches-py/` (5 train batches, the test batch, batches.meta)."""
    root = expand(spec.root)
    base = root / CIFAR10_DIR

    def missing() -> list[str]:
        return [name for name in CIFAR10_FILES if not (base / name).is_file()]

    if missing():
        fetch_or_fail(
            spec,
            "CIFAR10",
            root,
            f"CIFAR-10 files {', '.join(missing())} not found in {base}/",
            f"place the python-format files {', '.join(CIFAR10_FILES)} at {base}/ "
            f"(that is, extract cifar-10-python.tar.gz into {root}/)",
        )
        if missing():
            raise DatasetError(
                f"the CIFAR-10 download finished but {', '.join(missing())} are still missing "
                f"from {base}/; place them there and set `download: false`"
            )
    train = [_read_cifar_batch(base / f"data_batch_{i}") for i in range(1, 6)]
    x_train = torch.cat([x for x, _ in train])
    y_train = torch.cat([y for _, y in train])
    x_test, y_test = _read_cifar_batch(base / "test_batch")
    meta = _load_pickle(base / "batches.meta")
    names = _get(meta, "label_names", base / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    size = target_size(spec)
    return resize(x_train, size), y_train, resize(x_test, size), y_test, classes


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _load_pickle(path)
    data = np.asarray(_get(batch, "data", path))
    labels = np.asarray(_get(batch, "labels", path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{path}: 'data' should be an N x 3072 uint8 array, got {data.dtype} {data.shape}; "
            "replace it with the original CIFAR-10 python-format batch"
        )
    if labels.shape != (len(data),):
        raise DatasetError(f"{path}: {len(data)} images but {labels.size} labels")
    # Each row is channel-major: 1024 red, then 1024 green, then 1024 blue values, row by row.
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(labels)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file cannot run code."""

    _ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_pickle(path: Path) -> dict[Any, Any]:
    try:
        with path.open("rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as exc:
        raise DatasetError(
            f"cannot read {path} as a CIFAR-10 python-format batch ({exc}); "
            "replace it with the original file"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} should hold a dict, found {type(obj).__name__}")
    return obj


def _get(mapping: dict[Any, Any], key: str, path: Path) -> Any:
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    raise DatasetError(f"{path} has no {key!r} entry; replace it with the original file")
