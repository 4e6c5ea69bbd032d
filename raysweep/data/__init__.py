"""Datasets as uint8 tensors: decode the real on-disk formats once, then serve them from a cache.

`load_dataset(spec)` turns a `DatasetSpec` into an `ImageData` of uint8 (N, C, H, W) images and
int64 labels. The first load decodes the source (IDX, CIFAR pickles, an image folder, an .npz,
scikit-learn's digits or a seeded synthetic set), resizes it and splits it; the result is written
atomically to `cache_dir/<name>-<hash>.pt`, so every later load (other trials, other Ray workers)
only reads that file. Augmentation and normalization happen later, per batch, in `augment.py`.

Layout: `contract` (ImageData, what a decoder returns), `registry` (`register_dataset`,
`list_datasets`), `cache` (the tensor files), `load` (`load_dataset`), `splits` (splits, limits,
shards), `spec`, `resizing`, `download` (shared helpers) and `formats/` (one module per source
format, each registering itself). Heavy libraries (torchvision, scikit-learn, Pillow) are
imported only by the decoders that need them, when they run.
"""

from __future__ import annotations

from raysweep.data.cache import CACHE_VERSION, cache_path
from raysweep.data.contract import Decoded, ImageData, channel_stats
from raysweep.data.formats.cifar10 import CIFAR10_DIR, CIFAR10_FILES
from raysweep.data.formats.folder import IMAGE_EXTENSIONS
from raysweep.data.formats.mnist import FASHION_MNIST_CLASSES, MNIST_FILES, read_idx
from raysweep.data.load import load_dataset
from raysweep.data.registry import DatasetFormat, get_format, list_datasets, register_dataset
from raysweep.data.resizing import resize
from raysweep.data.splits import shard, stratified_split

__all__ = [
    "CACHE_VERSION",
    "CIFAR10_DIR",
    "CIFAR10_FILES",
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "MNIST_FILES",
    "DatasetFormat",
    "Decoded",
    "ImageData",
    "cache_path",
    "channel_stats",
    "get_format",
    "list_datasets",
    "load_dataset",
    "read_idx",
    "register_dataset",
    "resize",
    "shard",
    "stratified_split",
]


def __getattr__(name: str) -> object:
    # DATASET_NAMES (the registered names, sorted) is computed on first use: it imports every
    # format module, and a format registered later than that is not in it (use list_datasets).
    if name == "DATASET_NAMES":
        return tuple(list_datasets())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
