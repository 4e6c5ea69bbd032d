"""Datasets as uint8 tensors: decode the real on-disk formats once, then serve them from a cache.

`load_dataset(spec)` turns a `DatasetSpec` into an `ImageData` of uint8 (N, C, H, W) images and
int64 labels. The first load decodes the source (IDX, CIFAR pickles, an image folder, an .npz,
scikit-learn's digits or a seeded synthetic set), resizes it and splits it; the result is written
atomically to `cache_dir/<name>-<hash>.pt`, so every later load (other trials, other Ray workers)
only reads that file. Augmentation and normalization happen later, per batch, in `augment.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import pickle
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.errors import DatasetError

log = logging.getLogger(__name__)

DATASET_NAMES = ("digits", "cifar10", "fashion_mnist", "mnist", "folder", "npz", "synthetic")

# Bump when the decoded tensors for an unchanged spec would change, so old cache files are ignored.
CACHE_VERSION = 1

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
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Images per chunk when resizing or computing statistics, to bound the float working memory.
_CHUNK = 4096


@dataclass
class ImageData:
    """A dataset held in memory: uint8 (N, C, H, W) images, int64 labels, channel statistics."""

    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, classes={self.num_classes})"
        )


# --------------------------------------------------------------------------- public API


def load_dataset(spec: Any) -> ImageData:
    """Load the dataset `spec` describes, decoding it on the first call and caching the tensors.

    Later calls with a spec that yields the same tensors read `cache_path(spec)` instead of the
    source files. `limit_train` / `limit_test` are applied after the cache, so changing them
    never re-decodes. Raises `DatasetError` for anything the user has to fix.
    """
    if spec.name not in _DECODERS:
        raise DatasetError(
            f"unknown dataset {spec.name!r}: choose one of {', '.join(DATASET_NAMES)}"
        )
    path = cache_path(spec)
    cached = _read_cache(path)
    if cached is None:
        x_train, y_train, x_test, y_test, classes = _DECODERS[spec.name](spec)
        cached = _to_cache_dict(spec.name, x_train, y_train, x_test, y_test, classes)
        _write_cache(path, cached)
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
    return _apply_limits(data, spec.limit_train, spec.limit_test, spec.split_seed)


def cache_path(spec: Any) -> Path:
    """The cache file for `spec`: `cache_dir/<name>-<12 hex chars>.pt`.

    The hash covers only the fields that change the decoded tensors for that dataset (plus, for
    `npz` and `folder`, the modification times of the source, so editing the data re-decodes).
    """
    key: dict[str, Any] = {"version": CACHE_VERSION, "name": spec.name}
    key.update({f: getattr(spec, f) for f in _KEY_FIELDS.get(spec.name, ())})
    key["image_size"] = _target_size(spec)
    if spec.name in ("mnist", "fashion_mnist", "cifar10"):
        key["root"] = str(_expand(spec.root))
    if spec.name in ("npz", "folder"):
        key["path"] = str(_required_path(spec))
        key["source"] = _source_fingerprint(spec)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return _expand(spec.cache_dir) / f"{spec.name}-{digest}.pt"


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


# --------------------------------------------------------------------------- cache

# Spec fields (besides name, image_size and resolved paths) that change the decoded tensors.
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "digits": ("test_fraction", "split_seed"),
    "mnist": (),
    "fashion_mnist": (),
    "cifar10": (),
    "folder": ("test_fraction", "split_seed"),
    "npz": ("test_fraction", "split_seed"),
    "synthetic": ("num_train", "num_test", "num_classes", "channels", "split_seed"),
}


def _read_cache(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        # mmap: trials on one node share the page cache instead of each holding a private copy.
        cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a file from another torch version, a damaged disk...: rebuild
        log.warning("ignoring unreadable dataset cache %s (%s); decoding again", path, exc)
        return None
    if not isinstance(cached, dict) or cached.get("version") != CACHE_VERSION:
        return None
    return cached


def _write_cache(path: Path, cached: dict[str, Any]) -> None:
    """Write atomically: a unique temp file in the same directory, then os.replace."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as f:
            torch.save(cached, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        # The data is decoded and usable; only the next load pays for decoding again.
        log.warning("could not write dataset cache %s (%s); continuing without it", path, exc)
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _to_cache_dict(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    classes: list[str],
) -> dict[str, Any]:
    _check_decoded(name, x_train, y_train, x_test, y_test, classes)
    mean, std = channel_stats(x_train)
    return {
        "version": CACHE_VERSION,
        "name": name,
        "x_train": _compact(x_train),
        "y_train": _compact(y_train.to(torch.int64)),
        "x_test": _compact(x_test),
        "y_test": _compact(y_test.to(torch.int64)),
        "classes": [str(c) for c in classes],
        "mean": list(mean),
        "std": list(std),
    }


def _compact(t: torch.Tensor) -> torch.Tensor:
    """Contiguous, owning exactly its bytes: torch.save writes the whole storage of a view."""
    t = t.contiguous()
    return t.clone() if t.untyped_storage().nbytes() != t.nbytes else t


def _check_decoded(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    classes: list[str],
) -> None:
    """Guard the invariants every consumer relies on (decoders validate user input earlier)."""
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) == 0:
            raise DatasetError(f"dataset {name!r} has no {split} images")
        assert x.dtype == torch.uint8 and x.dim() == 4 and len(x) == len(y), (x.shape, y.shape)
        if x.shape[2] != x.shape[3]:
            raise DatasetError(
                f"dataset {name!r}: {split} images are {x.shape[2]}x{x.shape[3]}; set "
                "`image_size` to resize them to a square"
            )
        if int(y.min()) < 0 or int(y.max()) >= len(classes):
            raise DatasetError(
                f"dataset {name!r}: {split} labels must lie in 0..{len(classes) - 1} "
                f"(one per class), found {int(y.min())}..{int(y.max())}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"dataset {name!r}: train images are {tuple(x_train.shape[1:])} but test images are "
            f"{tuple(x_test.shape[1:])}; they must have the same channels and size"
        )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1].

    A constant channel gets std 1/255 rather than 0, so normalizing never divides by zero.
    """
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count / 255.0
    var = (squares / count / 255.0**2 - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1.0 / 255.0)
    return tuple(mean.tolist()), tuple(std.tolist())


def _apply_limits(
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


# --------------------------------------------------------------------------- shared helpers

_Decoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


def _expand(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().absolute()


def _required_path(spec: Any) -> Path:
    if not spec.path:
        what = "an image folder" if spec.name == "folder" else "an .npz file"
        raise DatasetError(f"dataset {spec.name!r} needs `path`: set it to {what}")
    return _expand(spec.path)


def _target_size(spec: Any) -> int | None:
    """The side images are resized to; None keeps the native size."""
    if spec.image_size is not None:
        if spec.image_size < 1:
            raise DatasetError(f"image_size must be a positive integer, got {spec.image_size}")
        return int(spec.image_size)
    return 32 if spec.name in ("digits", "folder", "synthetic") else None


def _source_fingerprint(spec: Any) -> list[Any]:
    """Cheap change detector for user-supplied data: mtimes/sizes, never file contents."""
    path = _required_path(spec)
    if spec.name == "npz":
        if not path.is_file():
            raise DatasetError(f"npz file not found: {path}; set `path` to an existing .npz file")
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    if not path.is_dir():
        raise DatasetError(
            f"image folder not found: {path}; set `path` to a directory with one subdirectory "
            "of images per class (or train/ and test/ directories laid out that way)"
        )
    # Directory mtimes change when entries are added, removed or renamed (not on in-place edits).
    dirs = [path, *sorted(p for p in path.iterdir() if p.is_dir())]
    for split in ("train", "test"):
        if (path / split).is_dir():
            dirs += sorted(p for p in (path / split).iterdir() if p.is_dir())
    return [[str(d.relative_to(path)), d.stat().st_mtime_ns] for d in dirs]


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinearly (antialiased) resize uint8 (N, C, H, W) images to size x size; None: unchanged."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.float32)
        chunk = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + _CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


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


def _split(
    x: torch.Tensor, y: torch.Tensor, spec: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    train_idx, test_idx = stratified_split(y, spec.test_fraction, spec.split_seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


# --------------------------------------------------------------------------- digits


def _decode_digits(spec: Any) -> _Decoded:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # sklearn's digits are 8x8 with values 0..16.
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    x = resize(torch.from_numpy(images).unsqueeze(1), _target_size(spec))
    y = torch.from_numpy(bunch.target.astype(np.int64))
    x_train, y_train, x_test, y_test = _split(x, y, spec)
    return x_train, y_train, x_test, y_test, [str(i) for i in range(10)]


# --------------------------------------------------------------------------- MNIST


def _decode_mnist(spec: Any) -> _Decoded:
    fashion = spec.name == "fashion_mnist"
    # torchvision's class names double as the directory names under root.
    torchvision_class = "FashionMNIST" if fashion else "MNIST"
    root = _expand(spec.root)
    raw = root / torchvision_class / "raw"
    files = {key: _find_idx(raw / name) for key, name in MNIST_FILES.items()}
    if any(p is None for p in files.values()):
        missing = [str(raw / MNIST_FILES[key]) for key, p in files.items() if p is None]
        expected = ", ".join(str(raw / name) for name in MNIST_FILES.values())
        _fetch_or_fail(
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
    x_train = _read_idx_images(files["train_images"])
    y_train = _read_idx_labels(files["train_labels"], len(x_train))
    x_test = _read_idx_images(files["test_images"])
    y_test = _read_idx_labels(files["test_labels"], len(x_test))
    size = _target_size(spec)
    classes = FASHION_MNIST_CLASSES if fashion else [str(i) for i in range(10)]
    return resize(x_train, size), y_train, resize(x_test, size), y_test, list(classes)


def _find_idx(plain: Path) -> Path | None:
    gz = plain.with_name(plain.name + ".gz")
    return plain if plain.is_file() else gz if gz.is_file() else None


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


def _fetch_or_fail(
    spec: Any, torchvision_class: str, root: Path, problem: str, placement: str
) -> None:
    """Download via torchvision when allowed, turning every failure into a DatasetError."""
    if not spec.download:
        raise DatasetError(
            f"{problem} and `download` is false: {placement}, or set `download: true`"
        )
    log.info("downloading %s to %s", torchvision_class, root)
    try:
        from torchvision import datasets

        getattr(datasets, torchvision_class)(str(root), train=True, download=True)
    except Exception as exc:  # no network, proxy, checksum, disk full: all the user's to fix
        raise DatasetError(
            f"{problem} and downloading {torchvision_class} to {root} failed ({exc}). "
            f"To work offline, {placement} and set `download: false`"
        ) from exc


# --------------------------------------------------------------------------- CIFAR-10


def _decode_cifar10(spec: Any) -> _Decoded:
    root = _expand(spec.root)
    base = root / CIFAR10_DIR

    def missing() -> list[str]:
        return [name for name in CIFAR10_FILES if not (base / name).is_file()]

    if missing():
        _fetch_or_fail(
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
    size = _target_size(spec)
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


# --------------------------------------------------------------------------- image folder


def _decode_folder(spec: Any) -> _Decoded:
    root = _required_path(spec)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}; set `path` to an existing directory")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        present, absent = (train_dir, test_dir) if train_dir.is_dir() else (test_dir, train_dir)
        raise DatasetError(
            f"{root} has {present.name}/ but no {absent.name}/: create {absent}/ with the same "
            f"class subdirectories, or put the class subdirectories directly in {root}/"
        )
    size = _target_size(spec)
    if train_dir.is_dir():
        classes = _class_dirs(train_dir)
        train_files = _list_images(train_dir, classes, require_all=True)
        extra = sorted(set(_class_dirs(test_dir, allow_empty=True)) - set(classes))
        if extra:
            raise DatasetError(
                f"{test_dir} has class directories {extra} that {train_dir} lacks; "
                "train/ and test/ must use the same class names"
            )
        test_files = _list_images(test_dir, classes, require_all=False)
        if not test_files:
            raise DatasetError(f"no images found under {test_dir}; add test images per class")
        mode = _common_mode([f for f, _ in train_files + test_files])
        x_train, y_train = _decode_images(train_files, mode, size)
        x_test, y_test = _decode_images(test_files, mode, size)
        return x_train, y_train, x_test, y_test, classes
    classes = _class_dirs(root)
    files = _list_images(root, classes, require_all=True)
    x, y = _decode_images(files, _common_mode([f for f, _ in files]), size)
    x_train, y_train, x_test, y_test = _split(x, y, spec)
    return x_train, y_train, x_test, y_test, classes


def _class_dirs(root: Path, allow_empty: bool = False) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes and not allow_empty:
        raise DatasetError(
            f"no class directories in {root}: expected one subdirectory of images per class, "
            f"e.g. {root}/cat/001.png and {root}/dog/002.jpg"
        )
    return classes


def _list_images(root: Path, classes: list[str], require_all: bool) -> list[tuple[Path, int]]:
    """(file, class index) for every image under root/<class>/ (recursively, sorted)."""
    files: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        class_dir = root / name
        found = (
            sorted(
                Path(dirpath) / filename
                for dirpath, _, filenames in os.walk(class_dir, followlinks=True)
                for filename in filenames
                if filename.lower().endswith(IMAGE_EXTENSIONS)
            )
            if class_dir.is_dir()
            else []
        )
        if require_all and not found:
            raise DatasetError(
                f"class directory {class_dir} has no images "
                f"(looked for {', '.join(IMAGE_EXTENSIONS)}); add images or remove the directory"
            )
        files += [(path, index) for path in found]
    return files


def _common_mode(paths: Sequence[Path]) -> str:
    """Mode "L" when every image is greyscale, else "RGB" (reads headers only)."""
    from PIL import Image, ImageMode

    for path in paths:
        try:
            with Image.open(path) as image:
                if ImageMode.getmode(image.mode).basemode != "L":
                    return "RGB"
        except Exception as exc:
            raise _bad_image(path, exc) from exc
    return "L"


def _decode_images(
    files: list[tuple[Path, int]], mode: str, size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    assert size is not None  # folder always has a target size (default 32)
    channels = 1 if mode == "L" else 3
    x = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                x[i] = np.asarray(image).reshape(size, size, channels)
        except Exception as exc:
            raise _bad_image(path, exc) from exc
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), y


def _bad_image(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(f"cannot decode image {path} ({exc}); fix or remove the file")


# --------------------------------------------------------------------------- npz


def _decode_npz(spec: Any) -> _Decoded:
    path = _required_path(spec)
    if not path.is_file():
        raise DatasetError(f"npz file not found: {path}; set `path` to an existing .npz file")
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
    size = _target_size(spec)
    x = resize(_npz_images(arrays["x"], path, "x"), size)
    y = _npz_labels(arrays["y"], len(x), path, "y")
    if "x_test" in arrays:
        x_test = resize(_npz_images(arrays["x_test"], path, "x_test"), size)
        y_test = _npz_labels(arrays["y_test"], len(x_test), path, "y_test")
        x_train, y_train = x, y
    else:
        x_train, y_train, x_test, y_test = _split(x, y, spec)
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


# --------------------------------------------------------------------------- synthetic


def _decode_synthetic(spec: Any) -> _Decoded:
    """Learnable noise: each class is a smooth random prototype; samples add Gaussian noise."""
    size = _target_size(spec)
    assert size is not None
    if spec.num_classes < 2 or spec.channels < 1 or spec.num_train < 1 or spec.num_test < 1:
        raise DatasetError(
            "synthetic data needs num_classes >= 2 and channels, num_train, num_test >= 1"
        )
    generator = torch.Generator().manual_seed(spec.split_seed)
    # Low-resolution prototypes upsampled: survive crop/flip augmentation, unlike pixel noise.
    coarse = torch.rand(spec.num_classes, spec.channels, 4, 4, generator=generator) * 255.0
    prototypes = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(count) % spec.num_classes)[
            torch.randperm(count, generator=generator)
        ]
        noise = torch.randn(count, spec.channels, size, size, generator=generator) * 40.0
        images = (prototypes[labels] + noise).round_().clamp_(0, 255).to(torch.uint8)
        return images, labels

    x_train, y_train = sample(spec.num_train)
    x_test, y_test = sample(spec.num_test)
    return x_train, y_train, x_test, y_test, [str(i) for i in range(spec.num_classes)]


_DECODERS: dict[str, Callable[[Any], _Decoded]] = {
    "digits": _decode_digits,
    "mnist": _decode_mnist,
    "fashion_mnist": _decode_mnist,
    "cifar10": _decode_cifar10,
    "folder": _decode_folder,
    "npz": _decode_npz,
    "synthetic": _decode_synthetic,
}
