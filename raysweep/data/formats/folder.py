"""`folder`: the user's images in torchvision's ImageFolder layout, decoded with Pillow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysweep.data.contract import Decoded
from raysweep.data.registry import register_dataset
from raysweep.data.spec import required_path, target_size
from raysweep.data.splits import split
from raysweep.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "decode_folder", "folder_source"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_WHAT = "an image folder"


def folder_source(spec: Any) -> dict[str, Any]:
    """The cache-key entries: the folder, and the mtimes of it and its class directories.

    Directory mtimes change when entries are added, removed or renamed (not on in-place edits):
    a cheap change detector that never reads the images.
    """
    path = required_path(spec, _WHAT)
    if not path.is_dir():
        raise DatasetError(
            f"image folder not found: {path}; set `path` to a directory with one subdirectory "
            "of images per class (or train/ and test/ directories laid out that way)"
        )
    dirs = [path, *sorted(p for p in path.iterdir() if p.is_dir())]
    for part in ("train", "test"):
        if (path / part).is_dir():
            dirs += sorted(p for p in (path / part).iterdir() if p.is_dir())
    fingerprint = [[str(d.relative_to(path)), d.stat().st_mtime_ns] for d in dirs]
    return {"path": str(path), "source": fingerprint}


@register_dataset(
    "folder",
    cache_fields=("test_fraction", "split_seed"),
    default_image_size=32,
    source=folder_source,
)
def decode_folder(spec: Any) -> Decoded:
    """One subdirectory per class; train/ and test/ splits if both exist, else a split."""
    root = required_path(spec, _WHAT)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}; set `path` to an existing directory")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        present, absent = (train_dir, test_dir) if train_dir.is_dir() else (test_dir, train_dir)
        raise DatasetError(
            f"{root} has {present.name}/ but no {absent.name}/: create {absent}/ with the same "
            f"class subdirectories, or put the class subdirectories directly in {root}/"
        )
    size = target_size(spec)
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
    x_train, y_train, x_test, y_test = split(x, y, spec)
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
