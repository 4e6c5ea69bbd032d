"""A trial's files, made from its last checkpoint on the driver: model, confusion matrix, step log.

The checkpoint (`state.pt`, written by rank 0 in `raysweep.train`) may sit on local disk or on
shared storage (s3://, gs://, NFS): pyarrow.fs reads both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysweep.records import CheckpointState
from raysweep.storage import STATE_FILE, filesystem, load_state_file


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in confusion), default=0)
    for i, row in enumerate(confusion):
        for j, v in enumerate(row):
            color = "white" if v > top / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _first_conv_weight(model_state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    for value in model_state.values():
        if value.ndim == 4:
            return value.float()
    return None


def _plot_kernels(weight: torch.Tensor, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(weight.shape[0], 64)
    cols = 8
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= count:
            continue
        kernel = weight[k]
        kernel = (kernel - kernel.min()) / (kernel.max() - kernel.min() + 1e-8)
        image = kernel.permute(1, 2, 0).numpy() if kernel.shape[0] == 3 else kernel[0].numpy()
        ax.imshow(image, cmap=None if kernel.shape[0] == 3 else "gray")
    fig.suptitle("first conv layer kernels")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
