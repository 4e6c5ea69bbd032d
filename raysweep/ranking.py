"""The one rule that ranks trials, used by every table, the console, `best` and the parent tag.

A trial is ranked by `best_<metric>` where it is tracked (its best epoch), else by its final
`metric`; a value that is missing or not finite ranks last. A trial that failed, diverged or
was killed is never best: its numbers do not describe a usable model (a killed trial has none
logged). Light on purpose: no pandas, torch or Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

from raysweep.records import UNRANKED as UNRANKED_STATUSES

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


# What ranking needs of an item: its metrics, its status and its id (for ties).
Describe: TypeAlias = Callable[[T], tuple[Mapping[str, Any], str, str]]


def ranked(items: Iterable[T], metric: str, goal: str, describe: Describe[T]) -> list[T]:
    """`items` best first; unranked statuses and items without a value last, ties by id."""
    sign = -1.0 if goal == "max" else 1.0

    def key(item: T) -> tuple[bool, float, str]:
        metrics, status, item_id = describe(item)
        value = rank_value(metrics, metric)
        unranked = value is None or status in UNRANKED_STATUSES
        return unranked, sign * (value if value is not None else 0.0), item_id

    return sorted(items, key=key)


def best(items: Iterable[T], metric: str, goal: str, describe: Describe[T]) -> T | None:
    """The best of `items` by `ranked`, or None if none may be best."""
    order = ranked(items, metric, goal, describe)
    if not order:
        return None
    metrics, status, _ = describe(order[0])
    if status in UNRANKED_STATUSES or rank_value(metrics, metric) is None:
        return None
    return order[0]
