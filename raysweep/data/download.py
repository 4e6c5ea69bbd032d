"""Fetching torchvision-layout datasets (MNIST, CIFAR-10, ...) into `root` when allowed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raysweep.errors import DatasetError

__all__ = ["fetch_or_fail"]

log = logging.getLogger(__name__)


def fetch_or_fail(
    spec: Any, torchvision_class: str, root: Path, problem: str, placement: str
) -> None:
    """Download via torchvision when allowed, turning every failure into a DatasetError.

    `problem` says what is missing, `placement` how to put it in place by hand.
    """
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
