"""The model registry: name -> factory and the one description of the model's kwargs.

Family modules (``lenet.py``, ``vgg.py``, ...) decorate their factories with
:func:`register_model`; :func:`create_model` imports them on first use. This module never
imports torch at module level, so the CLI's ``validate``/``plan`` can check ``model.name`` and
the model kwargs through :func:`catalog` and :func:`check_model_kwargs`.

Each model's kwargs are described once (:mod:`raysweep.models.signatures`): for the family
modules by an ``ast`` read of the factories' source (torch-free), which :func:`register_model`
stores as the model's description after checking that the live signature agrees. Both
:func:`check_model_kwargs` and :func:`create_model` check kwargs against that description, with
the same function.

Every factory takes only keyword-only parameters: the three standard kwargs
(:data:`STANDARD_KWARGS`, no defaults: :func:`create_model` passes them) plus its own, all with
literal defaults, and its docstring's first line says where the model comes from
("seed 003: BasicCNN, 3 conv + 2 FC"); :func:`describe_models` shows that line.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from raysweep import user_code
from raysweep.errors import UnknownModelError
from raysweep.models.signatures import (
    FAMILY_MODULES,
    STANDARD_KWARGS,
    check_kwargs,
    own_kwargs,
    params_from_signature,
    read_catalog,
    suggest,
)
from raysweep.models.user import check_user_model, create_user_model, user_model_kwargs

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FAMILY_MODULES",
    "STANDARD_KWARGS",
    "catalog",
    "check_model_kwargs",
    "count_params",
    "create_model",
    "describe_models",
    "list_models",
    "model_kwargs",
    "register_model",
]

_PACKAGE = "raysweep.models"
_FAMILY_PACKAGES = frozenset(f"{_PACKAGE}.{m}" for m in FAMILY_MODULES)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Entry:
    """A registered model: its factory and its own kwargs with defaults (its description)."""

    factory: Callable[..., Any]
    kwargs: Mapping[str, object]


_REGISTRY: dict[str, _Entry] = {}


def register_model(fn: F) -> F:
    """Register a model factory under its function name and return it unchanged.

    The factory takes only keyword-only parameters: ``in_channels``, ``num_classes`` and
    ``image_size`` without defaults, every other one with a default; its docstring's first line
    names its source. A factory in a family module must be a module-level ``@register_model``
    function whose signature matches the ``ast`` catalog (it does unless the read is fooled).

    Raises:
        ValueError: if the name is already registered or the factory breaks those rules.
    """
    name = fn.__name__
    if name in _REGISTRY:
        owner = _REGISTRY[name].factory.__module__
        raise ValueError(f"model {name!r} is already registered (by {owner})")
    if not (fn.__doc__ or "").strip():
        raise ValueError(f"model factory {name!r} needs a docstring (first line: its source)")
    own = own_kwargs(name, params_from_signature(fn))
    if fn.__module__ in _FAMILY_PACKAGES:
        described = read_catalog().get(name)
        if described is None:
            raise ValueError(
                f"model factory {name!r} ({fn.__module__}) is not in the catalog: define it "
                "at module level, decorated with @register_model"
            )
        if described != own:
            raise ValueError(
                f"model factory {name!r}: signature {own} differs from the catalog's {described}"
            )
        own = described
    _REGISTRY[name] = _Entry(fn, own)
    return fn


def _import_families() -> None:
    """Import every family module so that its factories register themselves."""
    for module in FAMILY_MODULES:
        importlib.import_module(f"{_PACKAGE}.{module}")


def list_models(pattern: str | None = None) -> list[str]:
    """Return the sorted names of all registered models (optionally fnmatch-filtered).

    This imports the family modules, hence torch; use :func:`catalog` for a torch-free list.
    """
    _import_families()
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def _unknown_model(name: str, available: list[str]) -> UnknownModelError:
    return UnknownModelError(
        f"unknown model {name!r}{suggest(name, available)}; available: {', '.join(available)}"
    )


def _description(name: str) -> Mapping[str, object]:
    """Model ``name``'s own kwargs with defaults, without importing torch.

    A registered model's entry, else the catalog's (the same dict for family models).
    """
    if name in _REGISTRY:
        return _REGISTRY[name].kwargs
    if user_code.is_ref(name):
        return user_model_kwargs(name)
    known = read_catalog()
    if name not in known:
        raise _unknown_model(name, sorted(set(known) | set(_REGISTRY)))
    return known[name]


def catalog() -> dict[str, dict[str, object]]:
    """Return ``{model name: {own kwarg: default}}`` for every model, without importing torch.

    It covers the factories in :data:`FAMILY_MODULES` (a model registered from elsewhere is
    known to :func:`model_kwargs` and :func:`create_model` once registered, but not here).

    The standard kwargs (in_channels, num_classes, image_size) are left out. Sequence defaults
    are tuples; the factories accept lists too (YAML gives lists).
    """
    return copy.deepcopy(read_catalog())


def model_kwargs(name: str) -> dict[str, object]:
    """Return the own kwargs of model ``name`` with their defaults (torch-free).

    Raises:
        UnknownModelError: if ``name`` is not a model.
    """
    return copy.deepcopy(dict(_description(name)))


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check, without torch, that model ``name`` takes every key in ``kwargs``, of that type.

    The standard kwargs (in_channels, num_classes, image_size) are always accepted here. Each
    value must have its default's type (an int passes for a float, a list for a tuple); value
    ranges (e.g. an unknown activation) are the model's to check when :func:`create_model`
    builds it.

    Raises:
        UnknownModelError: for an unknown model name, a kwarg the model does not take, or a
            value of the wrong type.
    """
    if user_code.is_ref(name):
        check_user_model(name, kwargs)
        return
    check_kwargs(name, _description(name), kwargs)


def create_model(
    name: str,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` for ``in_channels`` x ``image_size`` squared inputs.

    ``name`` is a registered model or a user factory (``"nets.py:TinyNet"``, an absolute path
    once the sweep file is loaded, or ``"package.module:factory"``; see
    :mod:`raysweep.models.user`).

    Raises:
        UnknownModelError: for an unknown name, a kwarg the model does not take, or a bad value
            (e.g. an unknown activation, or an image too small for the model's pooling); for a
            user factory that cannot be imported, raises or returns no ``nn.Module``.
    """
    standard = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    for key, value in standard.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UnknownModelError(
                f"model {name!r}: {key} must be a positive integer, got {value!r}"
            )
    if user_code.is_ref(name):
        return create_user_model(name, standard, kwargs)
    _import_families()
    if name not in _REGISTRY:
        raise _unknown_model(name, list_models())
    entry = _REGISTRY[name]
    check_kwargs(name, entry.kwargs, kwargs)
    try:
        return entry.factory(**standard, **kwargs)
    except ValueError as exc:
        raise UnknownModelError(f"model {name!r}: {exc}") from exc


def count_params(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _source_line(name: str) -> str:
    doc = inspect.getdoc(_REGISTRY[name].factory) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


def describe_models(
    in_channels: int = 3, image_size: int = 32, num_classes: int = 10
) -> list[dict[str, object]]:
    """Build every model with default kwargs and describe it.

    Returns:
        One dict per model, sorted by name, with keys ``name``, ``params`` (trainable, for the
        given input), ``kwargs`` (own kwargs with defaults) and ``source`` (seed report line).
    """
    rows: list[dict[str, object]] = []
    for name in list_models():
        model = create_model(
            name, in_channels=in_channels, num_classes=num_classes, image_size=image_size
        )
        rows.append(
            {
                "name": name,
                "params": count_params(model),
                "kwargs": model_kwargs(name),
                "source": _source_line(name),
            }
        )
    return rows
