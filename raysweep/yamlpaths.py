"""Reading sweep files and addressing their fields by dotted path (`train.optimizer.lr`).

YAML is read the way sweep files mean it (`1e-3` is a float); `--set` overrides are parsed
here; dotted paths get, set and merge values in the plain data before the schema sees it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from raysweep.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; sweep files mean a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"""
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML the way sweep files mean it (`1e-3` is a float)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a sweep file as plain data; ConfigError for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such sweep file")
    try:
        data = yaml_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}:{where}: malformed YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top (name, dataset, model, ...)")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`train.optimizer.lr=0.01` -> ("train.optimizer.lr", 0.01); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from exc
    return key, value


def split_path(path: str) -> list[str]:
    """Dotted path -> keys; `sweep.axes.<axis path>` keeps the axis path as one key."""
    parts = path.split(".")
    for i in range(len(parts) - 2):
        if parts[i] == "sweep" and parts[i + 1] == "axes":
            return parts[: i + 2] + [".".join(parts[i + 2 :])]
    return parts


def set_path(data: dict[str, Any], path: str, value: Any, merge: bool = False) -> None:
    """Set (or with merge=True, deep-merge a mapping) `value` at dotted `path`, in place."""
    keys = split_path(path)
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    last = keys[-1]
    if merge and isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = deep_merge(node[last], value)
    else:
        node[last] = copy.deepcopy(value)


def get_path(data: dict[str, Any], path: str, default: Any = None) -> Any:
    """The value at dotted `path`, or `default`."""
    node: Any = data
    for key in split_path(path):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `extra` merged in, mappings recursively."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
