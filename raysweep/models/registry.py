"""The model registry: name -> factory, with a torch-free catalog of each model's kwargs.

Family modules (``lenet.py``, ``vgg.py``, ...) decorate their factories with
:func:`register_model`; :func:`create_model` imports them on first use. This module never
imports torch at module level, so the CLI's ``validate``/``plan`` can check ``model.name`` and
the model kwargs through :func:`catalog` and :func:`check_model_kwargs`, which read the family
modules' source with :mod:`ast` instead of importing them.

Every factory takes the three standard kwargs (:data:`STANDARD_KWARGS`) plus its own, all with
literal defaults, and its docstring's first line says where the model comes from
("seed 003: BasicCNN, 3 conv + 2 FC"); :func:`describe_models` shows that line.
"""

from __future__ import annotations

import ast
import copy
import difflib
import fnmatch
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from raysweep.errors import UnknownModelError

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

#: The modules under ``raysweep/models`` that hold registered factories.
FAMILY_MODULES: tuple[str, ...] = ("alexnet", "lenet", "nn", "resnet", "simple_cnn", "vgg")

#: Kwargs every factory takes; :func:`catalog` leaves them out.
STANDARD_KWARGS: tuple[str, ...] = ("in_channels", "num_classes", "image_size")

_PACKAGE = "raysweep.models"
_HERE = Path(__file__).resolve().parent

F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(fn: F) -> F:
    """Register a model factory under its function name and return it unchanged.

    The factory must take ``in_channels``, ``num_classes`` and ``image_size``, give every
    parameter a default, and have a docstring whose first line names its source.

    Raises:
        ValueError: if the name is already registered or the factory breaks those rules.
    """
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__module__})")
    params = inspect.signature(fn).parameters
    missing = [k for k in STANDARD_KWARGS if k not in params]
    if missing:
        raise ValueError(f"model factory {name!r} lacks the standard kwargs {missing}")
    for p in params.values():
        if p.default is inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValueError(f"model factory {name!r}: parameter {p.name!r} needs a default")
    if not (fn.__doc__ or "").strip():
        raise ValueError(f"model factory {name!r} needs a docstring (first line: its source)")
    _REGISTRY[name] = fn
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


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_model(name: str, available: list[str]) -> UnknownModelError:
    return UnknownModelError(
        f"unknown model {name!r}{_suggest(name, available)}; available: {', '.join(available)}"
    )


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check, without torch, that model ``name`` takes every key in ``kwargs``, of that type.

    The standard kwargs (in_channels, num_classes, image_size) are always accepted here. Each
    value must have its default's type (an int passes for a float, a list for a tuple); value
    ranges (e.g. an unknown activation) are the factory's to check when :func:`create_model`
    builds the model.

    Raises:
        UnknownModelError: for an unknown model name, a kwarg the model does not take, or a
            value of the wrong type.
    """
    _check_kwargs(name, model_kwargs(name), kwargs)


def _own_defaults(fn: Callable[..., Any]) -> dict[str, object]:
    """A registered factory's own kwargs and defaults, read from its signature."""
    params = inspect.signature(fn).parameters
    return {k: p.default for k, p in params.items() if k not in STANDARD_KWARGS}


def _check_kwargs(name: str, own: Mapping[str, object], kwargs: Mapping[str, Any]) -> None:
    for key, value in kwargs.items():
        if key in STANDARD_KWARGS:
            continue
        if key not in own:
            takes = ", ".join(own) if own else "only " + ", ".join(STANDARD_KWARGS)
            raise UnknownModelError(
                f"model {name!r} takes no argument {key!r}{_suggest(key, list(own))}; "
                f"it takes: {takes}"
            )
        expected = _type_name(own[key])
        if not _fits(value, own[key]):
            raise UnknownModelError(f"model {name!r}: {key} must be {expected}, got {value!r}")


def _fits(value: object, default: object) -> bool:
    """Whether ``value`` has the type of ``default`` (ints pass for floats, lists for tuples)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            return False
        return not default or all(_fits(v, default[0]) for v in value)
    return isinstance(value, type(default))


def _type_name(default: object) -> str:
    if isinstance(default, bool):
        return "a boolean"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (tuple, list)):
        inner = _type_name(default[0]).split(" ", 1)[1] + "s" if default else "values"
        return f"a list of {inner}"
    return f"a {type(default).__name__}"


def create_model(
    name: str,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name`` for ``in_channels`` x ``image_size`` squared inputs.

    Raises:
        UnknownModelError: for an unknown name, a kwarg the model does not take, or a bad value
            (e.g. an unknown activation, or an image too small for the model's pooling).
    """
    available = list_models()
    if name not in _REGISTRY:
        raise _unknown_model(name, available)
    _check_kwargs(name, _own_defaults(_REGISTRY[name]), kwargs)
    standard = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    for key, value in standard.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UnknownModelError(
                f"model {name!r}: {key} must be a positive integer, got {value!r}"
            )
    try:
        return _REGISTRY[name](**standard, **kwargs)
    except ValueError as exc:
        raise UnknownModelError(f"model {name!r}: {exc}") from exc


def _is_register_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "register_model"
    if isinstance(node, ast.Attribute):
        return node.attr == "register_model"
    return False


def _literal(node: ast.expr | None, where: str) -> object:
    if node is None:
        raise RuntimeError(f"{where} has no default (every model kwarg needs one)")
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise RuntimeError(f"{where}: default {ast.unparse(node)!r} is not a literal") from exc


@functools.cache
def _parse_catalog() -> dict[str, dict[str, object]]:
    """Read the family modules' source and collect each registered factory's own kwargs."""
    found: dict[str, dict[str, object]] = {}
    for module in FAMILY_MODULES:
        path = _HERE / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if not any(_is_register_decorator(d) for d in node.decorator_list):
                continue
            args = node.args
            positional = args.posonlyargs + args.args
            padded: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
            pairs = list(zip(positional, padded + list(args.defaults), strict=True))
            pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
            own: dict[str, object] = {}
            for arg, default in pairs:
                where = f"{path.name}:{node.name}({arg.arg})"
                value = _literal(default, where)
                if arg.arg not in STANDARD_KWARGS:
                    own[arg.arg] = value
            if node.name in found:
                raise RuntimeError(f"model {node.name!r} is defined twice ({path.name})")
            found[node.name] = own
    return dict(sorted(found.items()))


def catalog() -> dict[str, dict[str, object]]:
    """Return ``{model name: {own kwarg: default}}`` for every model, without importing torch.

    It covers the factories in :data:`FAMILY_MODULES` (a model registered from elsewhere is
    known to :func:`create_model` but not here).

    The standard kwargs (in_channels, num_classes, image_size) are left out. Sequence defaults
    are tuples; the factories accept lists too (YAML gives lists).
    """
    return copy.deepcopy(_parse_catalog())


def model_kwargs(name: str) -> dict[str, object]:
    """Return the own kwargs of model ``name`` with their defaults (torch-free).

    Raises:
        UnknownModelError: if ``name`` is not a model.
    """
    cat = _parse_catalog()
    if name not in cat:
        raise _unknown_model(name, list(cat))
    return copy.deepcopy(cat[name])


def count_params(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _source_line(name: str) -> str:
    doc = inspect.getdoc(_REGISTRY[name]) or ""
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
                "kwargs": _own_defaults(_REGISTRY[name]),
                "source": _source_line(name),
            }
        )
    return rows
