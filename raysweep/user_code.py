"""User code in a sweep: model and dataset factories from a Python file or an importable module.

A reference is ``"<target>:<name>"``: ``"nets.py:TinyNet"`` (a file; relative paths are
resolved against the sweep file's directory by :func:`resolve_refs` and stored absolute) or
``"mylab.models:build_resnet"`` (a module on the Python path). ``validate``/``plan`` check a
reference without importing torch or running the user's code: the source is found (for a module
with :func:`importlib.util.find_spec`, parents included, without executing them) and read with
:mod:`ast` (:func:`read_factory`), and the kwargs are checked against the factory's parameters
(:func:`check_call`). At run time :func:`load_factory` imports it.

On a cluster, the directories of the user's files are staged as one package that Ray's runtime
environment ships to every node (:func:`runtime_env`); :func:`locate` finds a file there when
its absolute path does not exist on that node. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from raysweep.models.factory_source import (
    UNREADABLE,
    Factory,
    UserCodeError,
    bound_names,
    factories_in,
)
from raysweep.models.signatures import NO_DEFAULT, _fits, _type_name, suggest

__all__ = [
    "UNREADABLE",
    "Factory",
    "UserCodeError",
    "check_call",
    "content_hash",
    "file_factories",
    "is_ref",
    "load_factory",
    "locate",
    "read_factory",
    "resolve_ref",
    "resolve_refs",
    "runtime_env",
    "source_path",
]

#: The package name under which the user's files travel to the nodes of a cluster.
STAGED_PACKAGE = "raysweep_user_files"

#: Directories holding user files referenced in this process (what :func:`runtime_env` ships).
_USED_DIRS: set[Path] = set()


def is_ref(name: str) -> bool:
    """Whether a model/dataset ``name`` is a user reference (``target:function``)."""
    return ":" in name


def _split(ref: str) -> tuple[str, str]:
    target, _, attr = ref.rpartition(":")
    if not target or not attr.isidentifier():
        raise UserCodeError(f"{ref!r}: expected 'file.py:function' or 'package.module:function'")
    return target, attr


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def resolve_ref(name: str, base_dir: Path) -> str:
    """``name`` with a relative file target made absolute against ``base_dir``."""
    if not isinstance(name, str) or not is_ref(name):
        return name
    target, attr = name.rsplit(":", 1)
    if not _is_file(target):
        return name
    return f"{(base_dir / Path(target).expanduser()).resolve()}:{attr}"


def resolve_refs(data: dict[str, Any], base_dir: Path) -> None:
    """Resolve, in place, every model/dataset reference of raw sweep data (base, set, axes)."""

    def fix(section: Any) -> None:
        if isinstance(section, dict) and isinstance(section.get("name"), str):
            section["name"] = resolve_ref(section["name"], base_dir)

    def fix_map(mapping: Any) -> None:
        if not isinstance(mapping, dict):
            return
        for key, value in list(mapping.items()):
            values = value if isinstance(value, list) else [value]
            if key in ("model", "dataset"):
                for v in values:
                    fix(v)
            elif key in ("model.name", "dataset.name"):
                fixed = [resolve_ref(v, base_dir) for v in values]
                mapping[key] = fixed if isinstance(value, list) else fixed[0]

    fix(data.get("model"))
    fix(data.get("dataset"))
    sweep = data.get("sweep")
    if isinstance(sweep, dict):
        studies = sweep.get("studies") if isinstance(sweep.get("studies"), list) else []
        for study in [sweep, *studies]:
            if isinstance(study, dict):
                fix_map(study.get("set"))
                fix_map(study.get("axes"))


def _module_file(module: str) -> Path | None:
    """The source file of ``module`` found without executing it (nor its parent packages)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def locate(path: Path) -> Path:
    """``path``, or its copy shipped to this node by :func:`runtime_env` if it is not here."""
    if path.is_file():
        return path
    staged = _module_file(STAGED_PACKAGE)
    if staged is not None:
        copy = staged.parent / _dir_key(path.parent) / path.name
        if copy.is_file():
            return copy
    return path


def source_path(ref: str) -> Path:
    """The Python file ``ref`` points into, checked to exist (no code runs)."""
    target, _ = _split(ref)
    if _is_file(target):
        path = locate(Path(target).expanduser().absolute())
        if not path.is_file():
            raise UserCodeError(f"{ref!r}: no such file {path}")
        _USED_DIRS.add(Path(target).expanduser().absolute().parent)
        return path
    found = _module_file(target)
    if found is None:
        raise UserCodeError(
            f"{ref!r}: cannot find module {target!r} on the Python path (install it, or put "
            "its directory on PYTHONPATH; a file next to the sweep file is written 'file.py:name')"
        )
    return found


def content_hash(ref: str) -> str:
    """The SHA-256 of the source file ``ref`` points into."""
    return hashlib.sha256(source_path(ref).read_bytes()).hexdigest()


def read_factory(ref: str) -> Factory:
    """Read factory ``ref`` from its source with ``ast`` (no import, no torch)."""
    path = source_path(ref)
    _, attr = _split(ref)
    found = factories_in(path)
    if attr in found:
        return found[attr]
    if attr in bound_names(path):
        return Factory(attr, {}, True, "")
    raise UserCodeError(f"{ref!r}: {path.name} defines no {attr!r}{suggest(attr, list(found))}")


def file_factories(path: Path, standard: tuple[str, ...]) -> list[Factory]:
    """The factories a file defines: top-level functions/classes that take every ``standard``."""
    return [
        f
        for f in factories_in(path).values()
        if not f.name.startswith("_") and all(k in f.params for k in standard)
    ]


def check_call(
    ref: str, kwargs: Mapping[str, Any], standard: tuple[str, ...], what: str
) -> Factory:
    """Check that factory ``ref`` takes ``standard`` and ``kwargs`` and needs nothing else.

    Raises:
        UserCodeError: naming the factory and the first problem (a typo gets "did you mean").
    """
    factory = read_factory(ref)
    label = f"{what} {ref!r}"
    if factory.any_kwargs and not factory.params:
        return factory
    missing = [k for k in standard if k not in factory.params and not factory.any_kwargs]
    if missing:
        raise UserCodeError(f"{label} must take {', '.join(standard)} (it lacks {missing})")
    own = [k for k in factory.params if k not in standard]
    for key, value in kwargs.items():
        if key not in factory.params:
            if factory.any_kwargs:
                continue
            takes = ", ".join(own) if own else "no other arguments"
            raise UserCodeError(
                f"{label} takes no argument {key!r}{suggest(key, own)}; it takes: {takes}"
            )
        default = factory.params[key]
        if default not in (NO_DEFAULT, UNREADABLE, None) and not _fits(value, default):
            raise UserCodeError(f"{label}: {key} must be {_type_name(default)}, got {value!r}")
    needed = [k for k in own if factory.params[k] is NO_DEFAULT and k not in kwargs]
    if needed:
        raise UserCodeError(f"{label} needs a value for {', '.join(map(repr, needed))}")
    return factory


def load_factory(ref: str) -> Callable[..., Any]:
    """Import the factory ``ref`` (runs the user's module)."""
    target, attr = _split(ref)
    if _is_file(target):
        path = source_path(ref)
        key = hashlib.sha256(str(Path(target).expanduser().absolute()).encode()).hexdigest()[:8]
        module_name = f"raysweep_user_{path.stem}_{key}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            if str(path.parent) not in sys.path:
                sys.path.append(str(path.parent))  # sibling imports in the user's file
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
    else:
        module = importlib.import_module(target)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserCodeError(f"{ref!r}: {attr!r} is not a function or class in {target}")
    return factory


def _dir_key(directory: Path) -> str:
    return "d_" + hashlib.sha256(str(directory).encode()).hexdigest()[:12]


def runtime_env() -> dict[str, Any]:
    """Ray runtime-env entries shipping the user files referenced so far to every node.

    The top-level ``*.py`` files of each directory holding one are copied into a package
    (:data:`STAGED_PACKAGE`) passed as ``py_modules``; empty when no user file is referenced.
    """
    if not _USED_DIRS:
        return {}
    root = Path(tempfile.mkdtemp(prefix="raysweep-user-")) / STAGED_PACKAGE
    root.mkdir()
    (root / "__init__.py").write_text('"""User files of a raysweep sweep."""\n')
    for directory in sorted(_USED_DIRS):
        dest = root / _dir_key(directory)
        dest.mkdir()
        for source in directory.glob("*.py"):
            shutil.copy2(source, dest / source.name)
    return {"py_modules": [str(root)]}
