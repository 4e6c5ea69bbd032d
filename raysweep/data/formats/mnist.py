"""`mnist` and `fashion_mnist`: the original IDX files in torchvision's layout under `root`."""

from __future__ import annotations

import gzip
import math
import struct
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

__all__ = ["FASHION_MNIST_CLASSES", "MNIST_FILES", "decode_mnist", "read_idx"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@register_dataset("mnist", source=root_source)
@register_dataset("fashion_mnist", source=root_source)
def decode_mnist(spec: Any) -> Decoded:
    """Read the four IDX files (plain or .gz) of `<root>/<MNIST|FashionMNIST>/raw/`."""
    fashion = spec.name == "fashion_mnist"
    # torchvision's class names double as the directory names under root.
    torchvision_class = "FashionMNIST" if fashion else "MNIST"
    root = expand(spec.root)
    raw = root / torchvision_class / "raw"
    files = {key: _find_idx(raw / name) for key, name in MNIST_FILES.items()}
    if any(p is None for p in files.values()):
        missing = [str(raw / MNIST_FILES[key]) for key, p in files.items() if p is None]
        expected = ", ".join(str(raw / name) for name in MNIST_FILES.values())
        fetch_or_fail(
            spec,
            torchvision_class,
            root,
            f"{torchvision_class} files not found: {', '.join(missing)} (nor with .gz)",
            f"place the files at {expected} (each plain, or gzipped with .gz appended)",
        )
        files = {key: _find_idx(raw / name) for key, name in MNIST_FILES.items()}
        missing = [str(raw / name) for key, name in MNIST_FILES.items() if files[key] is None]
        if missing:
            raise DatasetError(
                f"the {torchvision_class} download finished but {', '.join(missing)} "
                f"(plain or .gz) are still missing; place them at {raw}/ and set `download: false`"
            )
    x_train = _read_idx_images(_found(files["train_images"]))
    y_train = _read_idx_labels(_found(files["train_labels"]), len(x_train))
    x_test = _read_idx_images(_found(files["test_images"]))
    y_test = _read_idx_labels(_found(files["test_labels"]), len(x_test))
    size = target_size(spec)
    classes = FASHION_MNIST_CLASSES if fashion else [str(i) for i in range(10)]
    return resize(x_train, size), y_train, resize(x_test, size), y_test, list(classes)


def _find_idx(plain: Path) -> Path | None:
    gz = plain.with_name(plain.name + ".gz")
    return plain if plain.is_file() else gz if gz.is_file() else None


def _found(path: Path | None) -> Path:
    assert path is not None  # decode_mnist raised for every missing file
    return path


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (MNIST's format; `.gz` is decompressed) as an array."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; replace it with an intact copy") from exc
    # Magic number: two zero bytes, a type code (0x08 = unsigned byte) and the number of dims.
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DatasetError(
            f"{path} is not an IDX file of unsigned bytes (bad magic number {raw[:4].hex()}); "
            "replace it with the original MNIST-format file"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated (incomplete header); replace it")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DatasetError(
            f"{path} holds {len(raw) - header} bytes of data but its header promises "
            f"{math.prod(dims)} ({'x'.join(map(str, dims))}); replace it with an intact copy"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_images(path: Path) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 3:
        raise DatasetError(f"{path} should hold images (3 dims: N x H x W), it has {array.ndim}")
    return torch.from_numpy(array.copy()).unsqueeze(1)


def _read_idx_labels(path: Path, count: int) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 1 or len(array) != count:
        raise DatasetError(
            f"{path} should hold {count} labels (one per image), it has shape {array.shape}"
        )
    return torch.from_numpy(array.astype(np.int64))
