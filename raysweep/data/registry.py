"""The dataset registry: name -> format (its decoder and what its cache key covers).

Each module under ``raysweep/data/formats/`` decorates its decoder with :func:`register_dataset`;
:func:`list_datasets` and :func:`get_format` import every module of that package on first use,
so adding a format is adding one file there. The config schema lists the same names
(``DatasetSpec.name``); tests/test_data.py checks that the two agree.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from raysweep.data.contract import Decoded
from raysweep.errors import DatasetError

__all__ = ["FORMATS_PACKAGE", "DatasetFormat", "get_format", "list_datasets", "register_dataset"]

#: The package whose modules hold the registered formats (every module in it is imported).
FORMATS_PACKAGE = "raysweep.data.formats"

Decoder = Callable[[Any], Decoded]
D = TypeVar("D", bound=Decoder)


@dataclass(frozen=True)
class DatasetFormat:
    """A registered dataset: how to decode it and which spec facts its decoded tensors depend on.

    Attributes:
        name: the ``dataset.name`` of the sweep file.
        decode: ``spec -> Decoded``, resized to :func:`raysweep.data.spec.target_size`; raises
            ``DatasetError`` for anything the user has to fix.
        cache_fields: spec fields (besides name and image size) that change the decoded tensors.
        default_image_size: the side images are resized to when ``image_size`` is unset; None
            keeps the native size.
        source: ``spec -> dict`` naming the source on disk in the cache key (a resolved root, or
            a path and a change fingerprint); None for data that needs no files.
    """

    name: str
    decode: Decoder
    cache_fields: tuple[str, ...] = ()
    default_image_size: int | None = None
    source: Callable[[Any], dict[str, Any]] | None = None


_REGISTRY: dict[str, DatasetFormat] = {}


def register_dataset(
    name: str,
    *,
    cache_fields: tuple[str, ...] = (),
    default_image_size: int | None = None,
    source: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[D], D]:
    """Register the decorated decoder as dataset ``name`` and return it unchanged.

    Decorators stack: one decoder may serve several names (it reads ``spec.name``).

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorate(decode: D) -> D:
        if name in _REGISTRY:
            owner = _REGISTRY[name].decode.__module__
            raise ValueError(f"dataset {name!r} is already registered (by {owner})")
        fmt = DatasetFormat(name, decode, tuple(cache_fields), default_image_size, source)
        _REGISTRY[name] = fmt
        return decode

    return decorate


@functools.cache
def _import_formats() -> None:
    """Import every module of the formats package so that its decoders register themselves."""
    package = importlib.import_module(FORMATS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{FORMATS_PACKAGE}.{module.name}")


def list_datasets(pattern: str | None = None) -> list[str]:
    """Return the sorted names of all registered datasets (optionally fnmatch-filtered)."""
    _import_formats()
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_format(name: str) -> DatasetFormat:
    """Return the registered format ``name``, or the format of a user factory ``file.py:fn``.

    Raises:
        DatasetError: if no format of that name is registered.
    """
    if ":" in name:  # a factory in the user's code, "data.py:load_scans"
        from raysweep.data.user import user_format

        return user_format(name)
    _import_formats()
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(list_datasets())}")
    return _REGISTRY[name]
