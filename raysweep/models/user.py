"""Models from the user's code: ``model.name: "nets.py:TinyNet"`` or ``"mylab.models:build"``.

The factory is called as ``factory(in_channels=..., num_classes=..., image_size=..., **kwargs)``
and must return an ``nn.Module``. :func:`check_user_model` checks a reference and its kwargs
without importing torch (:mod:`raysweep.user_code` reads the source with ``ast``);
:func:`create_user_model` imports and calls it, turning whatever goes wrong into an
``UnknownModelError`` that names the factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep import user_code
from raysweep.errors import UnknownModelError
from raysweep.models.signatures import NO_DEFAULT, STANDARD_KWARGS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["check_user_model", "create_user_model", "file_models", "user_model_kwargs"]


def check_user_model(ref: str, kwargs: Mapping[str, Any]) -> None:
    """Check, without torch, that ``ref`` exists and takes the standard kwargs and ``kwargs``.

    Raises:
        UnknownModelError: saying what is missing or misspelled.
    """
    try:
        user_code.check_call(ref, kwargs, STANDARD_KWARGS, "model")
    except user_code.UserCodeError as exc:
        raise UnknownModelError(str(exc)) from None


def user_model_kwargs(ref: str) -> dict[str, object]:
    """The factory's own kwargs with their defaults (a required one maps to None)."""
    try:
        factory = user_code.read_factory(ref)
    except user_code.UserCodeError as exc:
        raise UnknownModelError(str(exc)) from None
    return {
        k: (None if v is NO_DEFAULT or v is user_code.UNREADABLE else v)
        for k, v in factory.params.items()
        if k not in STANDARD_KWARGS
    }


def create_user_model(
    ref: str, standard: Mapping[str, int], kwargs: Mapping[str, Any]
) -> nn.Module:
    """Import factory ``ref`` and build the model.

    Raises:
        UnknownModelError: if the factory cannot be found or imported, raises, or does not
            return an ``nn.Module``; the message names the factory and the cause.
    """
    from torch import nn

    check_user_model(ref, kwargs)
    try:
        factory = user_code.load_factory(ref)
    except user_code.UserCodeError as exc:
        raise UnknownModelError(str(exc)) from None
    except Exception as exc:
        raise UnknownModelError(
            f"model {ref!r}: importing it raised {type(exc).__name__}: {exc}"
        ) from exc
    try:
        model = factory(**standard, **kwargs)
    except Exception as exc:
        raise UnknownModelError(
            f"model {ref!r} raised {type(exc).__name__}: {exc} (called with {dict(standard)} "
            f"and {dict(kwargs)})"
        ) from exc
    if not isinstance(model, nn.Module):
        raise UnknownModelError(
            f"model {ref!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def file_models(path: Path, in_channels: int, image_size: int, num_classes: int) -> list[dict]:
    """Build each factory a file defines with default kwargs; one row per model.

    Rows have ``name`` (the reference), ``params`` (trainable parameters; None when it cannot
    be built with defaults), ``kwargs`` and ``source`` (its docstring's first line, or why it
    could not be built).
    """
    from raysweep.models.registry import count_params

    path = path.expanduser().absolute()
    if not path.is_file():
        raise UnknownModelError(f"--file {path}: no such file")
    try:
        factories = user_code.file_factories(path, STANDARD_KWARGS)
    except user_code.UserCodeError as exc:
        raise UnknownModelError(str(exc)) from None
    standard = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    rows: list[dict] = []
    for factory in factories:
        ref = f"{path}:{factory.name}"
        row: dict[str, Any] = {"name": f"{path.name}:{factory.name}", "params": None}
        row["kwargs"] = user_model_kwargs(ref)
        row["source"] = factory.doc
        try:
            row["params"] = count_params(create_user_model(ref, standard, {}))
        except UnknownModelError as exc:
            row["source"] = f"cannot build with defaults: {exc}"
        rows.append(row)
    return rows
