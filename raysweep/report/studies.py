"""A sweep's studies and their factors, the way the seed reports group their figures.

A trial belongs to every study named in its `raysweep.studies` tag (comma-separated: a base
trial shared by several studies is in each). A study's factors are the swept parameters whose
values differ among its trials (the seed is never one: repeats are averaged). For one factor,
`factor_lines` gives one line per value of that factor: in an `ofat` study the base and the
trials that vary that factor (every other factor at its base value), in a grid one line per
value per combination of the other factors. Pure: no plotting, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from raysweep.report.plotkit import cut, group_by, series_label
from raysweep.report.tables import SweepData, config_axes, value_key

ALL = "all"  # the one study of a sweep whose trials name none


@dataclass
class Study:
    """A study: its name, its trials (summary order) and the swept parameters it varies."""

    name: str
    trials: list[str]
    factors: list[str]


@dataclass
class Line:
    """One line of a study figure: the trials it averages (seeds of one configuration), its
    legend label, and its value of the figure's factor and of the other factors (context)."""

    label: str
    trials: list[str]
    value: str
    context: tuple[str, ...]


def study_names(row: dict[str, Any]) -> list[str]:
    """The studies a summary row belongs to (its comma-separated `studies`)."""
    text = row.get("studies") or ""
    return [s.strip() for s in str(text).split(",") if s.strip()]


def find_studies(sweep: SweepData, table: pd.DataFrame) -> list[Study]:
    """Every study of the sweep in first-seen plan order (trial id order), with its trials in
    summary order and its factors in axis order; one study 'all' when no trial names one."""
    rows = table.to_dict("records")
    members: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: str(r["trial_id"])):
        for name in study_names(row):
            members.setdefault(name, [])
    for row in rows:
        for name in study_names(row):
            members[name].append(row)
    if not members:
        members = {ALL: rows}
    return [
        Study(name, [r["trial_id"] for r in rs], study_factors(sweep, rs))
        for name, rs in members.items()
    ]


def study_factors(sweep: SweepData, rows: list[dict[str, Any]]) -> list[str]:
    """The swept parameters (seed excluded) whose values differ among `rows`, less a
    mapping-valued axis (`train: {epochs: 25, optimizer: {lr: 0.008}}`) whose every field is a
    swept parameter too (`train.epochs`, `train.optimizer.lr`): it tells nothing they do not."""
    axes = config_axes(sweep.axes)
    varied = [a for a in axes if len({value_key(r.get(a)) for r in rows}) > 1]
    raw = sweep.trials.set_index("trial_id") if "trial_id" in sweep.trials else None
    ids = [r["trial_id"] for r in rows]
    return [a for a in varied if not _implied(a, axes, rows, _mappings(raw, a, ids))]


def _mappings(raw: pd.DataFrame | None, axis: str, ids: list[str]) -> list[dict[str, Any]]:
    """The mapping values of `axis` that trials `ids` set (as the plan gave them)."""
    if raw is None or axis not in raw:
        return []
    values = raw[axis].reindex(ids)
    return [v for v in values if isinstance(v, dict)]


def _leaves(mapping: dict[str, Any], prefix: str) -> set[str]:
    out: set[str] = set()
    for key, value in mapping.items():
        path = f"{prefix}.{key}"
        out |= _leaves(value, path) if isinstance(value, dict) else {path}
    return out


def _implied(
    axis: str, axes: list[str], rows: list[dict[str, Any]], mappings: list[dict[str, Any]]
) -> bool:
    """True when `axis` is mapping-valued, every field its mappings set is one of `axes`, and
    it takes one value among the rows with the same values of those fields."""
    if not mappings:
        return False
    fields = sorted(set().union(*(_leaves(m, axis) for m in mappings)))
    if not set(fields) <= set(axes):
        return False
    return all(
        len({value_key(r.get(axis)) for r in members}) == 1
        for members in group_by(rows, fields).values()
    )


def _label(axes: list[str], values: tuple[str, ...]) -> str:
    return cut(series_label(axes, values))


def study_lines(study: Study, rows: list[dict[str, Any]]) -> list[Line]:
    """One line per configuration of the study (its factors' values; seeds averaged); a
    study without factors (one configuration) is one line named by its trial."""
    if not study.factors:
        if not rows:
            return []
        first = rows[0]
        label = cut(f"{first['trial_id']} {first.get('name') or ''}".strip())
        return [Line(label, [r["trial_id"] for r in rows], label, ())]
    lines = []
    for values, members in group_by(rows, study.factors).items():
        label = _label(study.factors, values)
        lines.append(Line(label, [r["trial_id"] for r in members], values[0], values[1:]))
    return lines


def factor_lines(study: Study, rows: list[dict[str, Any]], factor: str) -> list[Line]:
    """One line per value of `factor`, per combination (context) of the study's other factors
    in which `factor` takes more than one value: an ofat study's base and the trials varying
    `factor`; a grid's every configuration. Seeds of a configuration are averaged."""
    others = [f for f in study.factors if f != factor]
    contexts = group_by(rows, others)
    varied = {
        ctx: members
        for ctx, members in contexts.items()
        if len({value_key(m.get(factor)) for m in members}) > 1
    }
    chosen = varied or contexts
    lines = []
    for ctx, members in chosen.items():
        for (value,), same in group_by(members, [factor]).items():
            label = _label([factor], (value,))
            if len(chosen) > 1:
                label = _label([factor, *others], (value, *ctx))
            lines.append(Line(label, [r["trial_id"] for r in same], value, ctx))
    return lines
