"""A trial's files, made from its last checkpoint on the driver: model, confusion matrix, step log.

The checkpoint (`state.pt`, written by rank 0 in `raysweep.train`) may sit on local disk or on
shared storage (s3://, gs://, NFS): pyarrow.fs reads both.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysweep.records import CheckpointState
from raysweep.storage import STATE_FILE, filesystem, load_state_file

# torch.export (how MLflow saves a model) is not known to be thread-safe: the warm-up below and
# the writer's model logging take turns.
EXPORT_LOCK = threading.Lock()


def warm_up() -> bool:
    """Do once, before the first trial ends, what logging a model and plotting cost the first
    time in a process (MLflow's PyTorch flavor and matplotlib import, MLflow's first model
    save), by saving a tiny model the way a trial's is logged, with a stand-in for its
    program (`raysweep.exported`: trials export their own, so the driver needs no
    `torch._dynamo`). The driver runs it on a thread while Ray starts.

    True once done. Best effort: whatever fails here (False) fails again, and is reported,
    when a trial's model is logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import mlflow.pytorch
        import numpy as np

        from raysweep.exported import premade_program
        from raysweep.tracking import pip_requirements

        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)).eval()
        example = np.zeros((2, 1, 4, 4), dtype=np.float32)
        with EXPORT_LOCK, tempfile.TemporaryDirectory() as tmp:
            program = Path(tmp) / "program.pt2"
            program.write_bytes(b"")
            with premade_program(program, example.shape):
                mlflow.pytorch.save_model(
                    model,
                    f"{tmp}/model",
                    input_example=example,
                    pip_requirements=pip_requirements(),
                )
    except Exception:  # noqa: BLE001 - see the docstring
        return False
    return True


def load_state(checkpoint_path: str) -> CheckpointState:
    """The checkpoint dict of a trial (`<checkpoint>/state.pt`), on local disk or a URI."""
    fs, path = filesystem(checkpoint_path)
    with fs.open_input_stream(f"{path}/{STATE_FILE}") as stream:
        return load_state_file(stream.read())


def rebuild_model(state: dict[str, Any]) -> nn.Module:
    """The trained model from a checkpoint, in eval mode on the CPU."""
    from raysweep.models import create_model

    meta = state["meta"]
    model = create_model(
        meta["model"],
        in_channels=meta["in_channels"],
        num_classes=meta["num_classes"],
        image_size=meta["image_size"],
        **meta["model_kwargs"],
    )
    model.load_state_dict(state["model"])
    return model.eval()


def per_class_accuracy(confusion: list[list[int]], classes: list[str]) -> dict[str, float]:
    """Recall of each class from a confusion matrix (rows = true class)."""
    out = {}
    for name, row in zip(classes, confusion, strict=False):
        total = sum(row)
        out[name] = (row[classes.index(name)] / total) if total else float("nan")
    return out


def trial_artifacts(state: dict[str, Any], out: Path) -> list[Path]:
    """Write the trial's artifact files into `out`; returns their paths."""
    meta = state["meta"]
    classes = meta["classes"]
    confusion = state["confusion"]
    files = []
    cm = out / "confusion_matrix.json"
    cm.write_text(json.dumps({"classes": classes, "matrix": confusion}, indent=1))
    files.append(cm)
    pc = out / "per_class_accuracy.json"
    pc.write_text(json.dumps(per_class_accuracy(confusion, classes), indent=1))
    files.append(pc)
    files.append(_step_log(state["step_log"], out / "steps.parquet"))
    files.append(_plot_confusion(confusion, classes, out / "confusion_matrix.png"))
    kernels = _first_conv_weight(state["model"])
    if kernels is not None:
        files.append(_plot_kernels(kernels, out / "first_layer_kernels.png"))
    return files


def _step_log(rows: list[tuple[int, float, float]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "step": pa.array(range(1, len(rows) + 1), pa.int64()),
            "epoch": pa.array([r[0] for r in rows], pa.int32()),
            "lr": pa.array([r[1] for r in rows], pa.float64()),
            "loss": pa.array([r[2] for r in rows], pa.float64()),
        }
    )
    pq.write_table(table, path)
    return path


def _plot_confusion(confusion: list[list[int]], classes: list[str], path: Path) -> Path:
    from matplotlib.figure import Figure

    n = len(classes)
    # Margins sized from the longest class name (8 pt, the x labels at 45 degrees) rather than
    # `tight_layout`, which draws the whole figure once more to measure it: the driver makes
    # this figure for every trial, beside the trials training.
    longest = max((len(c) for c in classes), default=1)
    left, bottom, top, right = 0.65 + 0.06 * longest, 0.65 + 0.045 * longest, 0.15, 0.15
    cells_w, cells_h = 0.55 * n, 0.5 * n
    width, height = left + cells_w + right, bottom + cells_h + top
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, cells_w / width, cells_h / height))
    ax.imshow(confusion, cmap="Blues", aspect="auto")
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top_count = max((max(r) for r in confusion), default=0)
    for i, row in enumerate(confusion):
        for j, v in enumerate(row):
            color = "white" if v > top_count / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=color)
    fig.savefig(path, dpi=100)
    return path


def _first_conv_weight(model_state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    for value in model_state.values():
        if value.ndim == 4:
            return value.float()
    return None


def _plot_kernels(weight: torch.Tensor, path: Path) -> Path:
    """Up to 64 first-layer kernels, each scaled to its own range, 8 to a row, as one image
    (one axes, not one per kernel: a tenth of the drawing)."""
    from matplotlib.figure import Figure

    count = min(weight.shape[0], 64)
    cols = min(count, 8)
    rows = (count + cols - 1) // cols
    k = weight[:count].detach().float()
    lo = k.amin(dim=(1, 2, 3), keepdim=True)
    hi = k.amax(dim=(1, 2, 3), keepdim=True)
    k = (k - lo) / (hi - lo + 1e-8)
    if k.shape[1] != 3:
        k = k[:, :1].expand(-1, 3, -1, -1)  # grey: the first input channel
    size, gap = k.shape[-1], max(1, k.shape[-1] // 4)
    step = size + gap
    mosaic = torch.ones(3, rows * step - gap, cols * step - gap)  # white between kernels
    for index in range(count):
        r, c = divmod(index, cols)
        mosaic[:, r * step : r * step + size, c * step : c * step + size] = k[index]
    fig = Figure(figsize=(cols, rows + 0.4))
    ax = fig.add_axes((0.02, 0.02, 0.96, rows / (rows + 0.4) - 0.04))
    ax.imshow(mosaic.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    fig.suptitle("first conv layer kernels", y=1 - 0.15 / (rows + 0.4))
    fig.savefig(path, dpi=80)
    return path
