"""Expand a sweep's studies and axes into the exact list of trials `raysweep run` will run.

Pure and deterministic (random mode samples from a seeded generator), no torch or ray: this is
what `raysweep plan` prints, and what `run` hands to Ray Tune one trial at a time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from raysweep.config import SweepSpec, TrialConfig, validate_trial
from raysweep.errors import UserError
from raysweep.sections import RequestSpec, StudySpec
from raysweep.yamlpaths import get_path, set_path

# Short names for the run name and tables ("alexnet lr=1e-4 adam bs=128").
_ALIASES = {
    "train.optimizer.lr": "lr",
    "train.batch_size": "bs",
    "train.epochs": "ep",
    "train.optimizer.weight_decay": "wd",
    "train.optimizer.momentum": "mom",
    "train.loss.label_smoothing": "ls",
    "train.seed": "seed",
}
_VALUE_ONLY = {"model.name", "train.optimizer.name", "train.loss.name", "train.lr_schedule.name"}


@dataclass(frozen=True)
class Trial:
    """One resolved trial: its id, the studies it belongs to, what the sweep changed, its config,
    and what it asks of the cluster (its study's resources)."""

    trial_id: str
    studies: tuple[str, ...]
    overrides: dict[str, Any]
    config: TrialConfig
    fingerprint: str = field(default="")
    resources: RequestSpec = field(default_factory=RequestSpec)

    @property
    def name(self) -> str:
        """A run name a person can read: `alexnet lr=1e-4 adam bs=128`."""
        parts = [self.config.model.name]
        for path, value in self.overrides.items():
            if path == "model.name":
                continue
            if path == "model" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k != "name"}
                if not value:
                    continue
            parts.append(_describe(path, value))
        if len(parts) == 1:
            parts.append("base")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain data: what `plan --json` prints and what Tune passes to the trial driver."""
        return {
            "trial_id": self.trial_id,
            "name": self.name,
            "studies": list(self.studies),
            "overrides": self.overrides,
            "fingerprint": self.fingerprint,
            "config": self.config.model_dump(mode="json"),
            "resources": self.resources.model_dump(mode="json"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        """The trial `to_json` described (a trial an adaptive search created at run time)."""
        return cls(
            trial_id=data["trial_id"],
            studies=tuple(data["studies"]),
            overrides=dict(data["overrides"]),
            config=TrialConfig.model_validate(data["config"]),
            fingerprint=data["fingerprint"],
            resources=RequestSpec.model_validate(data["resources"]),
        )


def _describe(path: str, value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_describe(f"{path}.{k}", v) for k, v in value.items())
    text = format_value(value)
    if path in _VALUE_ONLY:
        return text
    key = _ALIASES.get(path, path.rsplit(".", 1)[-1])
    return f"{key}={text}"


def format_value(value: Any) -> str:
    """Compact text for a parameter value: 1e-4, 0.5, 16-32, true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            mantissa, exponent = f"{value:.3e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for path, value in overrides.items():
        set_path(out, path, value, merge=True)
    return out


def _sample(dist: Any, rng: random.Random) -> Any:
    if isinstance(dist, list):
        return rng.choice(dist)
    ((kind, args),) = dist.items()
    if kind == "choice":
        return rng.choice(args)
    lo, hi = args
    if kind == "randint":
        return rng.randrange(int(lo), int(hi))
    if kind == "uniform":
        return float(f"{rng.uniform(lo, hi):.4g}")
    return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")  # loguniform


def _points(study: StudySpec, base: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The override sets a study asks for, in a stable order."""
    axes = study.axes
    if study.mode == "tpe":
        return []  # chosen while the sweep runs (raysweep.search)
    if not axes:
        return [{}]
    if study.mode == "grid":
        names = list(axes)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if study.mode == "ofat":
        points: list[dict[str, Any]] = [{}]
        base_json = json.dumps(base, sort_keys=True)
        for path, values in axes.items():
            for value in values:
                if json.dumps(_apply(base, {path: value}), sort_keys=True) != base_json:
                    points.append({path: value})
        return points
    rng = random.Random(seed)
    return [{p: _sample(d, rng) for p, d in axes.items()} for _ in range(study.samples)]


def _drop_inherited_model_kwargs(
    config: dict[str, Any], base: dict[str, Any], overrides: dict[str, Any]
) -> None:
    """When a trial switches model, base kwargs the new model does not take are dropped.

    `model.name: [nn, lenet]` around a base `nn` with `hidden_channels` must not hand
    `hidden_channels` to LeNet; kwargs the trial sets itself are kept (and validated).
    """
    from raysweep.errors import UnknownModelError
    from raysweep.models.registry import model_kwargs

    name = config["model"].get("name")
    if name == base["model"].get("name"):
        return
    try:
        takes = model_kwargs(name)  # built-in or the user's own (read without running it)
    except UnknownModelError:
        return  # validation reports it
    explicit = {p.split(".", 1)[1] for p in overrides if p.startswith("model.")}
    if isinstance(overrides.get("model"), dict):
        explicit |= set(overrides["model"])
    for key in list(config["model"]):
        if key != "name" and key not in takes and key not in explicit:
            del config["model"][key]


def fingerprint(config: dict[str, Any]) -> str:
    """A short stable hash of a trial config (resume checks the plan did not change)."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canon.encode()).hexdigest()[:10]


def expand(spec: SweepSpec, source: str = "<sweep>") -> list[Trial]:
    """Every trial of the sweep, deduplicated across studies (a shared base runs once).

    A trial is a config trained under a request: the same config in two studies with
    different resources (data-parallel on 4 GPUs, and on 1) is two trials, one per study."""
    base = spec.base_dict()
    seed0 = spec.train.seed
    by_key: dict[str, tuple[dict[str, Any], dict[str, Any], list[str], RequestSpec]] = {}
    for index, study in enumerate(spec.sweep.studies):
        name = study_name(spec, index)
        resources = spec.study_resources(study)
        study_base = _apply(base, study.set)
        points = _points(study, study_base, seed=seed0 * 1000 + index)
        for point in points:
            for rep in range(spec.sweep.repeats):
                overrides = dict(point)
                if spec.sweep.repeats > 1:
                    point_seed = point.get("train.seed", get_path(study_base, "train.seed", seed0))
                    overrides["train.seed"] = point_seed + rep
                config = _apply(study_base, overrides)
                _drop_inherited_model_kwargs(config, study_base, overrides)
                key = json.dumps([config, resources.model_dump(mode="json")], sort_keys=True)
                if key in by_key:
                    if name not in by_key[key][2]:
                        by_key[key][2].append(name)
                    continue
                shown = {**study.set, **overrides} if study.set else overrides
                by_key[key] = (config, shown, [name], resources)

    return [
        make_trial(f"t{i:03d}", studies, overrides, config, source, resources=resources)
        for i, (config, overrides, studies, resources) in enumerate(by_key.values())
    ]


def study_name(spec: SweepSpec, index: int) -> str:
    """The name a study goes by: its own, or `main` / `study<i>`."""
    return spec.sweep.study_names()[index]


def select_studies(
    spec: SweepSpec, trials: list[Trial], wanted: Iterable[str]
) -> tuple[list[Trial], tuple[str, ...]]:
    """The trials of the studies `wanted` (`--study`: names, or comma lists of them) with the
    ids the whole plan gives them, and the selection in file order: empty when it is every
    study (the whole sweep). UserError naming the sweep's studies for an unknown name."""
    names = spec.sweep.study_names()
    chosen = {n.strip() for text in wanted for n in text.split(",") if n.strip()}
    unknown = [n for n in sorted(chosen) if n not in names]
    if unknown:
        raise UserError(
            f"--study {', '.join(unknown)}: sweep '{spec.name}' has no such study "
            f"(studies: {', '.join(names)})"
        )
    if not chosen or chosen == set(names):
        return trials, ()
    return [t for t in trials if chosen & set(t.studies)], tuple(n for n in names if n in chosen)


def study_requests(spec: SweepSpec, selected: Iterable[str] = ()) -> dict[str, RequestSpec]:
    """Each study's request (all of them, or the `selected` ones), by study name."""
    chosen = set(selected)
    return {
        name: spec.study_resources(study)
        for name, study in zip(spec.sweep.study_names(), spec.sweep.studies, strict=True)
        if not chosen or name in chosen
    }


def make_trial(
    trial_id: str,
    studies: list[str] | tuple[str, ...],
    overrides: dict[str, Any],
    config: dict[str, Any],
    source: str,
    *,
    resources: RequestSpec,
) -> Trial:
    """A validated trial from its resolved config; errors name the trial and its overrides."""
    where = f"trial {trial_id} ({_overrides_text(overrides)})"
    validated = validate_trial(config, source, where)
    return Trial(
        trial_id=trial_id,
        studies=tuple(studies),
        overrides=overrides,
        config=validated,
        fingerprint=fingerprint(validated.model_dump(mode="json")),
        resources=resources,
    )


def point_trial(
    spec: SweepSpec, index: int, trial_id: str, point: dict[str, Any], source: str
) -> Trial:
    """The trial of study `index` at `point` (axis path -> value), as `expand` would make it."""
    study = spec.sweep.studies[index]
    study_base = _apply(spec.base_dict(), study.set)
    config = _apply(study_base, point)
    _drop_inherited_model_kwargs(config, study_base, point)
    shown = {**study.set, **point} if study.set else dict(point)
    resources = spec.study_resources(study)
    return make_trial(
        trial_id, [study_name(spec, index)], shown, config, source, resources=resources
    )


def base_trials(spec: SweepSpec, trials: list[Trial], source: str = "<sweep>") -> list[Trial]:
    """`trials`, or for an adaptive sweep (whose trials are made as it runs) its base trial:
    what the checks before a sweep starts (datasets, models, retries, epochs) look at."""
    if trials or not is_adaptive(spec):
        return trials
    index = next(i for i, s in enumerate(spec.sweep.studies) if s.mode == "tpe")
    return [point_trial(spec, index, "base", {}, source)]


def is_adaptive(spec: SweepSpec) -> bool:
    """True when the sweep's points are chosen as results arrive (mode: tpe)."""
    return any(s.mode == "tpe" for s in spec.sweep.studies)


def _overrides_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"


def swept_params(trials: list[Trial]) -> list[str]:
    """The dotted paths any trial overrides, in first-seen order (the table's columns)."""
    seen: dict[str, None] = {}
    for trial in trials:
        for path in trial.overrides:
            seen.setdefault(path, None)
    return list(seen)
