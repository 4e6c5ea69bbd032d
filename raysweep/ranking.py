"""The one rule that ranks trials, used by every table, the console, `best` and the parent tag.

A trial is ranked by `best_<metric>` where it is tracked (its best epoch), else by its final
`metric`; a value that is missing or not finite ranks last. A trial that failed, diverged or
was killed is never best: its numbers do not describe a usable model (a killed trial has none
logged). Light on purpose: no pandas, torch or Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

UNRANKED_STATUSES = frozenset({"failed", "diverged", "killed"})

T = TypeVar("T")


def finite(value: Any) -> float | None:
    """`value` as a finite float, or None (missing, NaN, infinite, not a number, a bool)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def rank_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The value a trial is ranked by: `best_<metric>` where tracked, else the final `metric`."""
    best = finite(metrics.get(f"best_{metric}"))
    return best if best is not None else finite(metrics.get(metric))


def ranked(
    items: Iterable[T],
    metric: str,
    goal: str,
    metrics_of: Callable[[T], Mapping[str, Any]],
    status_of: Callable[[T], str],
    id_of: Callable[[T], str],
) -> list[T]:
    """`items` best first; unranked statuses and items without a value last, ties by id."""
    sign = -1.0 if goal == "max" else 1.0

    def key(item: T) -> tuple[bool, float, str]:
        value = rank_value(metrics_of(item), metric)
        unranked = value is None or status_of(item) in UNRANKED_STATUSES
        return unranked, sign * (value if value is not None else 0.0), str(id_of(item))

    return sorted(items, key=key)


def best(
    items: Iterable[T],
    metric: str,
    goal: str,
    metrics_of: Callable[[T], Mapping[str, Any]],
    status_of: Callable[[T], str],
    id_of: Callable[[T], str],
) -> T | None:
    """The best of `items` by `ranked`, or None if none may be best."""
    order = ranked(items, metric, goal, metrics_of, status_of, id_of)
    if not order:
        return None
    first = order[0]
    if status_of(first) in UNRANKED_STATUSES or rank_value(metrics_of(first), metric) is None:
        return None
    return first
