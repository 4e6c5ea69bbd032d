"""The on-disk tensor cache: one `<cache_dir>/<name>-<hash>.pt` per distinct decoded dataset.

Files are written atomically (a temp file renamed into place) and read memory-mapped, so trials
on one machine share the page cache; an unreadable file is ignored and rewritten, an unwritable
directory only costs a decode per load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from raysweep.data.contract import channel_stats, check_decoded
from raysweep.data.registry import get_format
from raysweep.data.spec import expand, target_size

__all__ = [
    "CACHE_VERSION",
    "cache_lock",
    "cache_path",
    "read_cache",
    "to_cache_dict",
    "write_cache",
]

log = logging.getLogger(__name__)

# Bump when the decoded tensors for an unchanged spec would change, so old cache files are ignored.
CACHE_VERSION = 1


def cache_path(spec: Any) -> Path:
    """The cache file for `spec`: `cache_dir/<name>-<12 hex chars>.pt`.

    The hash covers only the fields that change the decoded tensors for that dataset (plus, for
    `npz` and `folder`, the modification times of the source, so editing the data re-decodes).
    """
    fmt = get_format(spec.name)
    key: dict[str, Any] = {"version": CACHE_VERSION, "name": spec.name}
    key.update({f: getattr(spec, f) for f in fmt.cache_fields})
    key["image_size"] = target_size(spec)
    if fmt.source is not None:
        key.update(fmt.source(spec))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    # A user factory's name is a path: keep its file's stem and the function ("data_load").
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec.name).name.replace(".py:", "_"))
    return expand(spec.cache_dir) / f"{stem}-{digest}.pt"


def lock_path(path: Path) -> Path:
    """The lock file of cache file `path`: in the node's temp directory, so the cache
    directory holds only cache files (and a read-only cache can still be locked)."""
    digest = hashlib.sha256(str(path.expanduser().resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "raysweep-locks" / f"{path.stem}-{digest}.lock"


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for cache file `path` (an flock, released if the process dies).

    Around download + decode + write: trials starting together on a fresh node would otherwise
    each download the dataset into the same cache. Where the lock file cannot be created, runs
    unlocked: the writes are atomic anyway.
    """
    lock_file = lock_path(path)
    try:
        lock_file.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        log.warning("could not lock dataset cache %s (%s); decoding unlocked", path, exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_cache(path: Path) -> dict[str, Any] | None:
    """The cached dict at `path`, or None when it is missing, unreadable or of another version."""
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


def write_cache(path: Path, cached: dict[str, Any]) -> None:
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


def to_cache_dict(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    classes: list[str],
) -> dict[str, Any]:
    """Check a decoder's output and pack it, with its channel statistics, as a cache dict."""
    check_decoded(name, x_train, y_train, x_test, y_test, classes)
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
