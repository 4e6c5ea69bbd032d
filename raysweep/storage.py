"""Where checkpoints live: a local path or a URI (s3://, gs://, ...), read through pyarrow.

Light on purpose (no torch, no ray at import): the trial code inside Ray and the driver's
artifact logging both use it.
"""

from __future__ import annotations

from typing import Any

STATE_FILE = "state.pt"  # a checkpoint's content: model, optimizer, history, ... (torch.save)


def filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow filesystem of `location` and the path on it (local paths as they are)."""
    import pyarrow.fs

    if "://" in location:
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), location
