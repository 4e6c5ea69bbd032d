"""The search space of an adaptive (`mode: tpe`) study, without Ray: Optuna's distributions
for its axes, the mapping between Optuna's parameters and a trial's overrides, and the lines
`raysweep plan` prints. Optuna is imported only where a distribution is built.
"""

from __future__ import annotations

from typing import Any

from raysweep.config import SweepSpec
from raysweep.sections import StudySpec


def startup_trials(samples: int) -> int:
    """Random trials before TPE models the results: a quarter of the budget, 2 to 10."""
    return max(2, min(10, samples // 4))


def optuna_space(axes: dict[str, Any]) -> dict[str, Any]:
    """Each axis as an Optuna distribution; a list of values is a categorical choice by index
    (Optuna's categories must be plain scalars; a value may be a mapping or a list)."""
    import optuna.distributions as od

    space: dict[str, Any] = {}
    for path, axis in axes.items():
        if isinstance(axis, list) or "choice" in axis:
            values = axis if isinstance(axis, list) else axis["choice"]
            space[path] = od.CategoricalDistribution(list(range(len(values))))
            continue
        ((kind, (low, high)),) = axis.items()
        if kind == "randint":
            space[path] = od.IntDistribution(int(low), int(high) - 1)
        else:
            space[path] = od.FloatDistribution(float(low), float(high), log=kind == "loguniform")
    return space


def decode(axes: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's parameters as a trial's overrides (rounded to 4 significant digits, as random
    mode does, so run names stay readable)."""
    point: dict[str, Any] = {}
    for path, axis in axes.items():
        value = params[path]
        if isinstance(axis, list) or "choice" in axis:
            values = axis if isinstance(axis, list) else axis["choice"]
            point[path] = values[int(value)]
        elif isinstance(value, float):
            point[path] = float(f"{value:.4g}")
        else:
            point[path] = int(value)
    return point


def encode(axes: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """A trial's overrides as Optuna's parameters (the inverse of `decode`)."""
    params: dict[str, Any] = {}
    for path, axis in axes.items():
        if isinstance(axis, list) or "choice" in axis:
            values = axis if isinstance(axis, list) else axis["choice"]
            params[path] = values.index(point[path])
        else:
            params[path] = point[path]
    return params


def tpe_study(spec: SweepSpec) -> StudySpec:
    """The sweep's one tpe study."""
    return next(s for s in spec.sweep.studies if s.mode == "tpe")


def describe_space(axes: dict[str, Any]) -> list[str]:
    """One line per axis for `raysweep plan`: `train.optimizer.lr  loguniform 1e-05..0.1`."""
    from raysweep.plan import format_value

    lines = []
    for path, axis in axes.items():
        if isinstance(axis, list):
            lines.append(f"{path}  choice of {', '.join(format_value(v) for v in axis)}")
            continue
        ((kind, args),) = axis.items()
        if kind == "choice":
            lines.append(f"{path}  choice of {', '.join(format_value(v) for v in args)}")
        else:
            high = "(excluded)" if kind == "randint" else ""
            lines.append(f"{path}  {kind} {format_value(args[0])}..{format_value(args[1])}{high}")
    return lines
