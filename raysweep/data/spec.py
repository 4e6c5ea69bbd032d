"""Reading a dataset spec's shared fields: resolved paths and the side images are resized to.

Specs are duck-typed (``raysweep.config.DatasetSpec`` or anything with its fields), so this
package never imports the config schema.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from raysweep.data.registry import get_format
from raysweep.errors import DatasetError

__all__ = ["expand", "required_path", "root_source", "target_size"]


def expand(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` expanded, made absolute."""
    return Path(path).expanduser().absolute()


def required_path(spec: Any, what: str) -> Path:
    """The spec's resolved ``path``; a DatasetError saying to set it to ``what`` if unset."""
    if not spec.path:
        raise DatasetError(f"dataset {spec.name!r} needs `path`: set it to {what}")
    return expand(spec.path)


def root_source(spec: Any) -> dict[str, Any]:
    """The cache-key entry of a format read from torchvision's layout under ``root``."""
    return {"root": str(expand(spec.root))}


def target_size(spec: Any) -> int | None:
    """The side images are resized to; None keeps the native size."""
    if spec.image_size is not None:
        if spec.image_size < 1:
            raise DatasetError(f"image_size must be a positive integer, got {spec.image_size}")
        return int(spec.image_size)
    return get_format(spec.name).default_image_size
