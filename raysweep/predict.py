"""Predict classes of image files with a model logged by a sweep.

Images go through the transform the model was trained with: decoded by PIL, converted to the
model's channels (grey or RGB), resized to its square input with the same antialiased bilinear
resize the datasets use (`raysweep.data.resize`), scaled to [0, 1] and normalized with the
training set's per-channel mean/std. Those come from the model's `raysweep` metadata (written
when the sweep logged it), or, for a run whose model lacks it, from the run's dataset params.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class InputSpec:
    """What a model expects: square side, channels, normalization, class names."""

    image_size: int
    in_channels: int
    mean: list[float]
    std: list[float]
    classes: list[str]

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> InputSpec:
        """From the `raysweep` model metadata (`raysweep.train.model_meta`)."""
        return cls(
            image_size=int(meta["image_size"]),
            in_channels=int(meta["in_channels"]),
            mean=[float(v) for v in meta["mean"]],
            std=[float(v) for v in meta["std"]],
            classes=[str(c) for c in meta["classes"]],
        )


@dataclass
class Prediction:
    """The model's answer for one image: best class, its probability, the top-k list."""

    path: Path
    label: str
    probability: float
    top: list[tuple[str, float]]

    def to_json(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return {
            "path": str(self.path),
            "class": self.label,
            "probability": self.probability,
            "top": [{"class": c, "probability": p} for c, p in self.top],
        }


def collect_images(paths: list[Path]) -> list[Path]:
    """Files as given, and the PNG/JPEG files under directories (recursively, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not inside:
                raise UserError(f"{path}: no PNG or JPEG images in this directory")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or directory")
    if not found:
        raise UserError("no images given")
    return found


def load_image(path: Path, spec: InputSpec) -> Any:
    """One image as a uint8 (C, S, S) tensor in the model's channels and size."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from raysweep.data import resize

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if spec.in_channels == 1 else "RGB"
            array = np.asarray(image.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    batch = torch.from_numpy(np.array(array, copy=True)).unsqueeze(0)
    return resize(batch, spec.image_size)[0]


def normalize(batch: Any, spec: InputSpec) -> Any:
    """uint8 (N, C, H, W) -> float32 `(x / 255 - mean) / std`, as in training."""
    import torch

    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def load_model(model_uri: str, tracking_uri: str | None = None) -> tuple[Any, InputSpec]:
    """The model at `model_uri` (runs:/, models:/, a path) and the input it expects."""
    import mlflow

    from raysweep.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        info = mlflow.models.get_model_info(model_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a bad URI
        raise UserError(f"cannot load model {model_uri!r} from {uri}: {_first_line(exc)}") from None
    meta = (info.metadata or {}).get("raysweep")
    spec = InputSpec.from_meta(meta) if meta else _spec_from_run(info, model_uri)
    try:
        model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot load model {model_uri!r}: {_first_line(exc)}") from None
    # A pt2 (torch.export) model was exported in eval mode and refuses .eval(); an eager
    # nn.Module (other flavors of logging) needs it.
    with contextlib.suppress(AttributeError, NotImplementedError):
        model.eval()
    return model, spec


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _spec_from_run(info: Any, model_uri: str) -> InputSpec:
    """A model without raysweep metadata: rebuild the dataset from its run's params."""
    from mlflow.tracking import MlflowClient

    from raysweep.data import load_dataset
    from raysweep.report.store import parse_param
    from raysweep.sections import DatasetSpec

    run_id = getattr(info, "run_id", None)
    if not run_id:
        raise UserError(
            f"model {model_uri!r} has no raysweep metadata (mean/std/classes) and no run to "
            "read them from; log models with `raysweep run`"
        )
    params = MlflowClient().get_run(run_id).data.params
    prefix = "dataset."
    fields = {k[len(prefix) :]: parse_param(v) for k, v in params.items() if k.startswith(prefix)}
    if "name" not in fields:
        raise UserError(f"model {model_uri!r}: its run {run_id} has no dataset params")
    data = load_dataset(DatasetSpec.model_validate(fields))
    return InputSpec(
        image_size=data.image_size,
        in_channels=data.in_channels,
        mean=list(data.mean),
        std=list(data.std),
        classes=list(data.classes),
    )


def predict(
    model: Any, spec: InputSpec, paths: list[Path], top: int = 1, batch_size: int = 64
) -> list[Prediction]:
    """Class probabilities of every image (softmax of the model's outputs), top-k per image."""
    import torch

    top = max(1, min(top, len(spec.classes)))
    out: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = torch.stack([load_image(p, spec) for p in chunk])
        with torch.inference_mode():
            logits = model(normalize(batch, spec))
        probs = torch.softmax(logits.float(), dim=1)
        values, indices = probs.topk(top, dim=1)
        for path, vals, idxs in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            ranked = [(spec.classes[i], float(v)) for v, i in zip(vals, idxs, strict=True)]
            out.append(Prediction(path, ranked[0][0], ranked[0][1], ranked))
    return out
