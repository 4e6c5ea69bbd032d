"""Where checkpoints live and how their files are written and read.

A location is a local path or a URI (s3://, gs://, ...), read through pyarrow. Light on purpose
(no torch, no ray at import): the trial code inside Ray and the driver's artifact logging both
use it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raysweep.records import CheckpointState

STATE_FILE = "state.pt"  # a checkpoint's content: model, optimizer, history, ... (torch.save)


def filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow filesystem of `location` and the path on it (local paths as they are)."""
    import pyarrow.fs

    if "://" in location:
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), location


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a local file under a temporary name, then rename it: readers see all of it or none."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with draft.open("wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    draft.replace(path)


def load_state_file(source: Path | bytes) -> CheckpointState:
    """A checkpoint dict from `state.pt` (a path or its bytes), loaded as data only.

    `weights_only=True`: tensors, numbers, strings and containers, nothing that runs code, so a
    crafted file on shared storage cannot execute anything in the process that resumes it.
    """
    import torch

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    return torch.load(stream, map_location="cpu", weights_only=True)
