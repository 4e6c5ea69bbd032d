"""The sweep file: the whole file's schema, loading, `--set` overrides and error messages.

Nothing here imports torch or ray: `raysweep validate` and `raysweep plan` must answer fast.
Every error names the file, the dotted path and what was expected (`ConfigError`). The sections
(dataset, model, train, sweep, resources) are in `raysweep.sections`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from raysweep.errors import ConfigError
from raysweep.sections import (
    DatasetSpec,
    ModelSpec,
    RequestSpec,
    ResourcesSpec,
    Strict,
    StudySpec,
    SweepSection,
    TrainSpec,
)
from raysweep.yamlpaths import load_yaml, parse_override, set_path


class TrialConfig(Strict):
    """Everything one trial needs to train: the resolved config with no sweep left in it."""

    dataset: DatasetSpec
    model: ModelSpec
    train: TrainSpec = TrainSpec()


class SweepSpec(TrialConfig):
    """A whole sweep file."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    sweep: SweepSection = SweepSection()
    resources: ResourcesSpec = ResourcesSpec()

    @model_validator(mode="after")
    def _asha_fits(self) -> SweepSpec:
        sched = self.sweep.scheduler
        if sched.name == "asha":
            top = sched.max_epochs or self.train.epochs
            if sched.grace_epochs > top:
                raise ValueError(
                    f"sweep.scheduler.grace_epochs ({sched.grace_epochs}) is beyond the "
                    f"epochs a trial runs ({top})"
                )
        return self

    @model_validator(mode="after")
    def _study_resources_valid(self) -> SweepSpec:
        for index, study in enumerate(self.sweep.studies):
            where = f"sweep.studies[{index}].resources"
            if study.resources and "max_concurrent" in study.resources:
                raise ValueError(
                    f"{where}.max_concurrent: how many trials run at once is the whole "
                    "sweep's: set it in the top-level resources (or run --max-concurrent)"
                )
            try:
                self.study_resources(study)
            except ValidationError as exc:
                raise ValueError("; ".join(validation_messages(exc, where))) from None
        return self

    def study_resources(self, study: StudySpec) -> RequestSpec:
        """What each trial of `study` asks of the cluster: the top-level `resources` with
        every key the study's own `resources` sets replaced (key by key, like `set`)."""
        top = self.resources.model_dump(exclude={"max_concurrent", "placement_timeout_s"})
        return RequestSpec.model_validate({**top, **(study.resources or {})})

    def base_dict(self) -> dict[str, Any]:
        """The base trial config (dataset, model, train) as plain data."""
        return self.model_dump(mode="json", include={"dataset", "model", "train"})


# ---- loading --------------------------------------------------------------------------------


def format_validation_error(source: str, exc: ValidationError, prefix: str = "") -> str:
    """One line per pydantic error: `file: dotted.path: message`."""
    return "\n".join(f"{source}: {line}" for line in validation_messages(exc, prefix))


def validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    """One `dotted.path: message` per pydantic error (just the message where there is no
    path); `prefix` is put before every path."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        path = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


def check_axis_path(path: str, source: str, where: str) -> None:
    """Fail unless `path` names a field of the trial schema (model kwargs are checked later)."""
    node: type[BaseModel] | None = TrialConfig
    keys = path.split(".")
    for i, key in enumerate(keys):
        if node is None:
            return
        if node is ModelSpec and key != "name":
            return  # model kwargs depend on the model; checked when each trial is validated
        fields = node.model_fields
        if key not in fields:
            parent = ".".join(keys[:i]) or "the sweep file"
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{source}: {where}: '{path}' names no field: '{key}' is not in {parent}{hint}; "
                f"fields there: {', '.join(fields)}"
            )
        node = _model_type(fields[key].annotation)


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation like `EarlyStopSpec | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_type(arg)
        if found is not None:
            return found
    return None


def load_spec(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[SweepSpec, dict[str, Any]]:
    """Load, override and validate a sweep file; returns the spec and the raw (overridden) data."""
    source = str(path)
    data = load_yaml(path)
    for text in overrides:
        key, value = parse_override(text)
        set_path(data, key, value)
    _absolute_paths(data)
    # `nets.py:TinyNet` means next to the sweep file; trials may run anywhere, so absolute.
    from raysweep.user_code import resolve_refs

    resolve_refs(data, Path(path).absolute().parent)
    return validate_spec(data, source), data


def _absolute_paths(data: dict[str, Any]) -> None:
    # Relative dataset paths mean "from where raysweep was started"; Ray workers run elsewhere.
    dataset = data.get("dataset")
    if isinstance(dataset, dict):
        for key in ("root", "path", "cache_dir"):
            value = dataset.get(key)
            if isinstance(value, str) and value and not value.startswith("~"):
                dataset[key] = str(Path(value).resolve())


def validate_spec(data: dict[str, Any], source: str = "<sweep>") -> SweepSpec:
    """Validate raw sweep data; ConfigError listing every problem with its dotted path."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    for i, study in enumerate(spec.sweep.studies):
        where = f"sweep.studies[{i}]" if len(spec.sweep.studies) > 1 else "sweep"
        for key in study.set:
            check_axis_path(key, source, f"{where}.set")
        for key in study.axes:
            check_axis_path(key, source, f"{where}.axes")
    return spec


def validate_trial(data: dict[str, Any], source: str, where: str) -> TrialConfig:
    """Validate one expanded trial; errors say which trial (its overrides) broke which field."""
    try:
        return TrialConfig.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(source, exc).splitlines()
        tagged = [line.replace(f"{source}: ", f"{source}: {where}: ", 1) for line in lines]
        raise ConfigError("\n".join(tagged)) from None
