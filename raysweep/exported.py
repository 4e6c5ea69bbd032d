"""A trial's model as a `torch.export` program, made in the trial's own process.

MLflow saves a PyTorch model in its `pt2` format by running `torch.export` on it. On the driver
the first export imports `torch._dynamo` (~2 s of CPU) before doing any work; a trial's process
has `torch._dynamo` loaded already (torch.optim imports it on first use). So
an inline trial exports the model it is about to hand over, once, with its last checkpoint
(`save_program`, into `model.pt2` beside `state.pt`), exactly as MLflow would (same example
input, the batch dimension left to `Dim.AUTO`); the driver's `mlflow.pytorch.log_model` then
takes that file instead of exporting again (`premade_program`). Everything else MLflow writes
(signature, MLmodel, environment files, the logged-model record) is MLflow's own.

A trial that ends without a program is exported on the driver, as before: one stopped by ASHA,
an export that failed, a checkpoint from before this file existed, and a worker group's (its
processes are new for every trial, so each would pay a first export on the trial's own
critical path; the driver's overlaps the next trial's start).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROGRAM_FILE = "model.pt2"  # in a trial's last checkpoint: its model, torch.export'ed
EXAMPLE_BATCH = 2  # a batch of 1 would be specialized to a constant by torch.export


def example_input(meta: dict[str, Any]) -> np.ndarray:
    """The input example a trial's model is logged (and exported) with: zeros, NCHW."""
    shape = (EXAMPLE_BATCH, meta["in_channels"], meta["image_size"], meta["image_size"])
    return np.zeros(shape, dtype=np.float32)


def save_program(state: dict[str, Any], path: Path) -> bool:
    """Export the model of checkpoint `state` to `path` the way MLflow's pt2 flavor does; True
    if written. Best effort: a model torch.export refuses fails again, and is reported, when
    the driver logs it."""
    import torch
    from torch.export import Dim

    from raysweep.artifacts import rebuild_model

    try:
        model = rebuild_model(state)
        example = torch.from_numpy(example_input(state["meta"]))
        program = torch.export.export(model, (example,), dynamic_shapes=[{0: Dim.AUTO}])
        torch.export.save(program, path)
    except Exception:  # noqa: BLE001 - see the docstring
        path.unlink(missing_ok=True)
        return False
    return True


@dataclass(frozen=True)
class _Premade:
    """What the patched `torch.export.export` returns: the program already on disk."""

    path: Path


@contextmanager
def premade_program(path: Path, shape: tuple[int, ...]) -> Iterator[None]:
    """Inside, an export of a model on one input of `shape` with a `Dim.AUTO` batch dimension
    (what `mlflow.pytorch.save_model` asks for) gives the program saved at `path`, and saving
    it copies that file. Any other export runs as usual. Not thread-safe: hold
    `artifacts.EXPORT_LOCK`."""
    import torch.export
    from torch.export import Dim

    real_export, real_save = torch.export.export, torch.export.save

    def export(mod: Any, args: Any, kwargs: Any = None, **options: Any) -> Any:
        as_mlflow_asks = options == {"dynamic_shapes": [{0: Dim.AUTO}]} and not kwargs
        one_input = isinstance(args, tuple) and len(args) == 1
        if as_mlflow_asks and one_input and tuple(getattr(args[0], "shape", ())) == shape:
            return _Premade(path)
        return real_export(mod, args, kwargs, **options)

    def save(program: Any, f: Any, **options: Any) -> None:
        if isinstance(program, _Premade):
            shutil.copyfile(program.path, f)
            return
        real_save(program, f, **options)

    torch.export.export, torch.export.save = export, save  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.export.export, torch.export.save = real_export, real_save  # type: ignore[assignment]


def fetch_program(checkpoint_path: str, into: Path) -> Path | None:
    """The checkpoint's program copied into the local directory `into` (the checkpoint may be
    on shared storage); None if it has none."""
    import pyarrow.fs

    from raysweep.storage import filesystem

    fs, root = filesystem(checkpoint_path)
    source = f"{root}/{PROGRAM_FILE}"
    if fs.get_file_info(source).type != pyarrow.fs.FileType.File:
        return None
    local = into / PROGRAM_FILE
    with fs.open_input_stream(source) as stream, local.open("wb") as out:
        shutil.copyfileobj(stream, out)
    return local
