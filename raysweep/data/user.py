"""Datasets from the user's code: ``dataset.name: "data.py:load_scans"`` (or ``"pkg.mod:fn"``).

The factory is called with the spec's ``path`` (when set) and its own kwargs (the dataset keys
the schema does not know, ``DatasetSpec.kwargs``) and returns the train and test images and
labels, with optional class names: a tuple ``(x_train, y_train, x_test, y_test[, classes])`` or
a dict with those keys. Images are numpy arrays or tensors, uint8 or floats in [0, 1], shaped
(N, C, H, W), (N, H, W) or (N, H, W, C). The result goes through the same checks, resizing and
tensor cache as a built-in format: :func:`user_format` makes a :class:`DatasetFormat` whose
cache key covers the source file's content hash, the function name, ``path`` and the kwargs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from raysweep import user_code
from raysweep.data.contract import Decoded
from raysweep.data.formats.npz import _npz_images, _npz_labels
from raysweep.data.registry import DatasetFormat
from raysweep.data.resizing import resize
from raysweep.data.spec import target_size
from raysweep.errors import DatasetError

__all__ = ["decode_user", "user_format", "user_source"]

_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def _call_kwargs(spec: Any) -> dict[str, Any]:
    return {**({"path": str(spec.path)} if spec.path else {}), **dict(spec.kwargs or {})}


def user_source(spec: Any) -> dict[str, Any]:
    """The cache-key entries: the source's content hash, the function and its arguments."""
    try:
        digest = user_code.content_hash(spec.name)
    except user_code.UserCodeError as exc:
        raise DatasetError(str(exc)) from None
    return {"code": digest, "function": spec.name.rsplit(":", 1)[1], "call": _call_kwargs(spec)}


def _unpack(ref: str, result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        missing = [k for k in _KEYS[:4] if k not in result]
        if missing:
            raise DatasetError(f"dataset {ref!r} returned a dict without {missing}")
        return {k: result.get(k) for k in _KEYS}
    if isinstance(result, tuple | list) and len(result) in (4, 5):
        return dict(zip(_KEYS, [*result, None][:5], strict=True))
    raise DatasetError(
        f"dataset {ref!r} returned {type(result).__name__}; return (x_train, y_train, x_test, "
        "y_test[, classes]) or a dict with those keys"
    )


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def decode_user(spec: Any) -> Decoded:
    """Call the factory, convert its arrays to uint8 NCHW tensors and resize them."""
    ref = spec.name
    where = Path(ref.rsplit(":", 1)[0]).name + ":" + ref.rsplit(":", 1)[1]
    try:
        factory = user_code.load_factory(ref)
        result = factory(**_call_kwargs(spec))
    except (user_code.UserCodeError, DatasetError) as exc:
        raise DatasetError(str(exc)) from None
    except Exception as exc:
        raise DatasetError(f"dataset {ref!r} raised {type(exc).__name__}: {exc}") from exc
    parts = _unpack(ref, result)
    size = target_size(spec)
    x_train = resize(_npz_images(_array(parts["x_train"]), Path(where), "x_train"), size)
    x_test = resize(_npz_images(_array(parts["x_test"]), Path(where), "x_test"), size)
    y_train = _npz_labels(_array(parts["y_train"]), len(x_train), Path(where), "y_train")
    y_test = _npz_labels(_array(parts["y_test"]), len(x_test), Path(where), "y_test")
    num_labels = int(max(y_train.max(), y_test.max())) + 1
    if parts["classes"] is None:
        classes = [str(i) for i in range(num_labels)]
    else:
        classes = [str(c) for c in parts["classes"]]
        if len(classes) < num_labels:
            raise DatasetError(
                f"dataset {ref!r}: {len(classes)} class names but labels go up to "
                f"{num_labels - 1}; name every class (labels index the class names)"
            )
    return x_train, y_train, x_test, y_test, classes


@functools.cache
def user_format(name: str) -> DatasetFormat:
    """The format of factory reference ``name`` (decoded, checked and cached like a built-in)."""
    return DatasetFormat(name, decode_user, (), None, user_source)
