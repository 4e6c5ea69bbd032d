"""The one description of each model's kwargs, and the one check of kwargs against it.

A model's description is ``{own kwarg: default}``: its factory's keyword-only parameters other
than the standard ones (:data:`STANDARD_KWARGS`). For the factories in :data:`FAMILY_MODULES`
it is read from their source with :mod:`ast` (:func:`read_catalog`), so ``validate`` and
``plan`` know every model without importing torch; the registry hands the same dicts to
``create_model`` (and refuses a family factory whose live signature disagrees). A factory
registered from elsewhere is described by its live signature, through the same rules
(:func:`own_kwargs`). :func:`check_kwargs` is the only place kwargs are checked against a
description. Nothing here imports torch.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from raysweep.errors import UnknownModelError

__all__ = [
    "FAMILY_MODULES",
    "NO_DEFAULT",
    "STANDARD_KWARGS",
    "Param",
    "check_kwargs",
    "own_kwargs",
    "params_from_signature",
    "read_catalog",
    "suggest",
]

#: The modules under ``raysweep/models`` that hold registered factories.
FAMILY_MODULES: tuple[str, ...] = ("alexnet", "lenet", "nn", "resnet", "simple_cnn", "vgg")

#: Kwargs every factory takes, without a default: ``create_model`` always passes them.
STANDARD_KWARGS: tuple[str, ...] = ("in_channels", "num_classes", "image_size")

_HERE = Path(__file__).resolve().parent

#: Marks a parameter without a default in :class:`Param`.
NO_DEFAULT: Any = inspect.Parameter.empty


class Param(NamedTuple):
    """One factory parameter, as read from source (ast) or from a live signature."""

    name: str
    kind: Literal["keyword", "positional", "variadic"]
    default: object = NO_DEFAULT


def own_kwargs(factory: str, params: Sequence[Param]) -> dict[str, object]:
    """Apply the factory rules to ``params`` and return the factory's own kwargs with defaults.

    Rules: every parameter is keyword-only (no ``*args``/``**kwargs``); the standard kwargs are
    all there, without defaults; every other kwarg has a default.

    Raises:
        ValueError: naming the factory and the rule it breaks.
    """
    missing = [k for k in STANDARD_KWARGS if k not in {p.name for p in params}]
    if missing:
        raise ValueError(f"model factory {factory!r} lacks the standard kwargs {missing}")
    own: dict[str, object] = {}
    for p in params:
        where = f"model factory {factory!r}: parameter {p.name!r}"
        if p.kind == "variadic":
            raise ValueError(f"{where}: no *args/**kwargs; name every kwarg, with a default")
        if p.kind == "positional":
            raise ValueError(f"{where} must be keyword-only (start the parameters with `*,`)")
        if p.name in STANDARD_KWARGS:
            if p.default is not NO_DEFAULT:
                raise ValueError(f"{where} takes no default (create_model passes it)")
        elif p.default is NO_DEFAULT:
            raise ValueError(f"{where} needs a default")
        else:
            own[p.name] = p.default
    return own


def params_from_signature(fn: Callable[..., Any]) -> list[Param]:
    """The parameters of a live function."""
    kinds: dict[Any, Literal["keyword", "variadic"]] = {
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_POSITIONAL: "variadic",
        inspect.Parameter.VAR_KEYWORD: "variadic",
    }
    return [
        Param(p.name, kinds.get(p.kind, "positional"), p.default)
        for p in inspect.signature(fn).parameters.values()
    ]


def _params_from_ast(node: ast.FunctionDef) -> list[Param]:
    """The parameters of a function definition; keyword defaults must be literals."""
    args = node.args
    params = [Param(a.arg, "positional") for a in args.posonlyargs + args.args]
    params += [Param(a.arg, "variadic") for a in (args.vararg, args.kwarg) if a is not None]
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is None:
            params.append(Param(arg.arg, "keyword"))
            continue
        try:
            params.append(Param(arg.arg, "keyword", ast.literal_eval(default)))
        except ValueError as exc:
            raise ValueError(
                f"model factory {node.name!r}: the default of {arg.arg!r} "
                f"({ast.unparse(default)}) is not a literal"
            ) from exc
    return params


def _is_register_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "register_model"
    if isinstance(node, ast.Attribute):
        return node.attr == "register_model"
    return False


@functools.cache
def read_catalog() -> dict[str, dict[str, object]]:
    """Read the family modules' source: ``{model: {own kwarg: default}}`` for each factory.

    Covers the module-level functions decorated with ``@register_model``. The result is shared
    (cached): callers that hand it out copy it.

    Raises:
        RuntimeError: if a factory breaks the rules of :func:`own_kwargs` or a name repeats.
    """
    found: dict[str, dict[str, object]] = {}
    for module in FAMILY_MODULES:
        path = _HERE / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if not any(_is_register_decorator(d) for d in node.decorator_list):
                continue
            if node.name in found:
                raise RuntimeError(f"model {node.name!r} is defined twice ({path.name})")
            try:
                found[node.name] = own_kwargs(node.name, _params_from_ast(node))
            except ValueError as exc:
                raise RuntimeError(f"{path.name}: {exc}") from exc
    return dict(sorted(found.items()))


def suggest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_kwargs(name: str, own: Mapping[str, object], kwargs: Mapping[str, Any]) -> None:
    """Check ``kwargs`` against model ``name``'s description ``own`` (kwarg -> default).

    The standard kwargs are skipped (``create_model`` checks them). Each other key must be in
    ``own`` and its value of its default's type (an int passes for a float, a list for a
    tuple); value ranges are the model's to check when it is built.

    Raises:
        UnknownModelError: for a kwarg the model does not take, or a value of the wrong type.
    """
    for key, value in kwargs.items():
        if key in STANDARD_KWARGS:
            continue
        if key not in own:
            takes = ", ".join(own) if own else "only " + ", ".join(STANDARD_KWARGS)
            raise UnknownModelError(
                f"model {name!r} takes no argument {key!r}{suggest(key, list(own))}; "
                f"it takes: {takes}"
            )
        if not _fits(value, own[key]):
            raise UnknownModelError(
                f"model {name!r}: {key} must be {_type_name(own[key])}, got {value!r}"
            )


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
