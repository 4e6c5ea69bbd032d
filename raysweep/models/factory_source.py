"""Reading a factory's parameters from the user's source with :mod:`ast` (no import, no torch).

:func:`factories_in` describes every top-level function and class of a file as a
:class:`Factory` (a class by its ``__init__``, less ``self``); :func:`bound_names` lists the
names bound otherwise (assignments, imports), whose parameters cannot be read.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep.models.signatures import NO_DEFAULT

__all__ = ["UNREADABLE", "Factory", "UserCodeError", "bound_names", "factories_in"]

#: A default that is not a literal: the kwarg exists but its type is not checked.
UNREADABLE: Any = object()


class UserCodeError(ValueError):
    """A reference that cannot be found, read or called; the message says what to fix."""


@dataclass(frozen=True)
class Factory:
    """A factory as read from source: its parameters (name -> default, ``NO_DEFAULT`` if none).

    ``any_kwargs``: it takes ``**kwargs`` or could not be read (an assignment, an import), so
    every kwarg is accepted. ``doc``: the first line of its docstring.
    """

    name: str
    params: Mapping[str, object]
    any_kwargs: bool
    doc: str


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return UNREADABLE


def _factory_from_def(node: ast.FunctionDef | ast.AsyncFunctionDef, skip_self: bool) -> Factory:
    args = node.args
    positional = args.args[1:] if skip_self else args.args
    defaults = [NO_DEFAULT] * (len(positional) - len(args.defaults))
    defaults += [_literal(d) for d in args.defaults][-len(positional) :] if positional else []
    params: dict[str, object] = dict(zip((a.arg for a in positional), defaults, strict=True))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params[arg.arg] = NO_DEFAULT if default is None else _literal(default)
    doc = (ast.get_docstring(node) or "").strip().splitlines()
    return Factory(node.name, params, args.kwarg is not None, doc[0] if doc else "")


def _factories(tree: ast.Module) -> dict[str, Factory]:
    """The top-level functions and classes of a module, read as factories."""
    found: dict[str, Factory] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = _factory_from_def(node, skip_self=False)
        elif isinstance(node, ast.ClassDef):
            init = next(
                (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                None,
            )
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            if init is None:
                found[node.name] = Factory(node.name, {}, True, doc[0] if doc else "")
            else:
                made = _factory_from_def(init, skip_self=True)
                found[node.name] = Factory(
                    node.name, made.params, made.any_kwargs, doc[0] if doc else made.doc
                )
    return found


def _names_bound(tree: ast.Module) -> set[str]:
    """Top-level names bound other than by def/class (assignments, imports)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@functools.cache
def _parse(path: Path, stamp: tuple[int, int]) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise UserCodeError(f"{path}: line {exc.lineno}: syntax error: {exc.msg}") from None


def _tree(path: Path) -> ast.Module:
    stat = path.stat()
    return _parse(path, (stat.st_size, stat.st_mtime_ns))


def factories_in(path: Path) -> dict[str, Factory]:
    """Every top-level function and class of the file at ``path``, by name."""
    return _factories(_tree(path))


def bound_names(path: Path) -> set[str]:
    """Top-level names of the file at ``path`` bound by assignments or imports."""
    return _names_bound(_tree(path))
