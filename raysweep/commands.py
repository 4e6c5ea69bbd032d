"""What the `raysweep` commands do, as functions that print their results.

`raysweep.cli` is only the command line's face (flags, help, errors, exit codes): each of its
commands parses its flags and calls one of these. `validate`, `plan` and `models` look at sweep
files and the model zoo; `report`, `best`, `predict` and `export` compare a sweep's runs from
MLflow alone. Only click (to print) is imported at module level: mlflow, torch and pandas load
when a function runs, so `raysweep --help`, `validate` and `plan` stay light.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from raysweep.errors import UserError

if TYPE_CHECKING:
    from raysweep.config import SweepSpec
    from raysweep.plan import Trial


def _say(text: str = "") -> None:
    click.echo(text)


def _records(table: Any) -> list[dict[str, Any]]:
    return json.loads(table.to_json(orient="records", double_precision=10))


def _fmt(value: Any, metric: str) -> str:
    return _pct(value) if "acc" in metric or metric == "gap" else f"{float(value):.4g}"


def _pct(value: Any) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{100 * float(value):.2f}%")
    )


# ------------------------------------------------------------------ validate | plan | models


def load_sweep(spec: Path, overrides: tuple[str, ...] = ()) -> tuple[SweepSpec, list[Trial]]:
    """The sweep file with its `--set` overrides, validated, and every trial it expands to."""
    from raysweep.config import load_spec
    from raysweep.plan import expand

    sweep, _ = load_spec(spec, overrides)
    return sweep, expand(sweep, str(spec))


def run_validate(spec: Path, overrides: tuple[str, ...] = ()) -> None:
    """Check a sweep file and every trial it expands to; print one line when all is well."""
    from raysweep.plan import base_trials, is_adaptive
    from raysweep.searchspace import tpe_study

    sweep, trials = load_sweep(spec, overrides)
    if is_adaptive(sweep):
        base_trials(sweep, trials, str(spec))  # the base a tpe search starts from is valid
        count = f"up to {tpe_study(sweep).samples} trials (tpe: chosen as results arrive)"
    else:
        count = f"{len(trials)} trial{'' if len(trials) == 1 else 's'}"
    _say(f"{spec}: ok: sweep '{sweep.name}', {count}")


def run_plan(
    spec: Path,
    overrides: tuple[str, ...] = (),
    as_json: bool = False,
    address: str | None = None,
    studies: tuple[str, ...] = (),
) -> None:
    """Print the trials `raysweep run` would run (checked against Ray cluster `address`), of
    the `studies` given (`--study`) or all."""
    from raysweep.plan import select_studies
    from raysweep.planview import plan_report

    sweep, trials = load_sweep(spec, overrides)
    trials, selected = select_studies(sweep, trials, studies)
    _say(plan_report(sweep, trials, as_json=as_json, address=address, studies=selected))


def run_models(
    input_shape: str = "3x32x32",
    num_classes: int = 10,
    as_json: bool = False,
    file: Path | None = None,
) -> None:
    """Print every registered model (or the factories `file` defines) with its parameter count
    for `CxHxW` inputs."""
    from raysweep.models import describe_models

    try:
        c, h, w = (int(v) for v in input_shape.lower().split("x"))
    except ValueError:
        raise UserError(f"--input {input_shape!r}: expected CxHxW, e.g. 1x28x28") from None
    if h != w:
        raise UserError(f"--input {input_shape!r}: images must be square")
    if file is not None:
        from raysweep.models.user import file_models

        rows = file_models(file, in_channels=c, image_size=h, num_classes=num_classes)
        if not rows and not as_json:
            raise UserError(
                f"--file {file}: no factory found (a top-level function or class taking "
                "in_channels, num_classes and image_size)"
            )
    else:
        rows = describe_models(in_channels=c, image_size=h, num_classes=num_classes)
    if as_json:
        _say(json.dumps(rows, indent=1))
        return
    width = max(len(r["name"]) for r in rows)
    _say(f"{'model'.ljust(width)}  {'params':>12}  source")
    for r in rows:
        params = "?" if r["params"] is None else f"{r['params']:,}"
        _say(f"{r['name'].ljust(width)}  {params:>12}  {r['source']}")


# ----------------------------------------------------------------------------------- report


def run_report(
    experiment: str,
    tracking_uri: str | None,
    out: Path | None,
    parent_id: str | None = None,
    log: bool = True,
    as_json: bool = False,
    band_cut: str = "none",
) -> Path:
    """(Re)build the summary, figures and report.html of a sweep from MLflow, write them to
    `out` and to the sweep's parent run; print the table. `band_cut`: where the loss bands end
    (`none`, or `shortest` as seed 003's script). Returns the output directory."""
    from raysweep.report.build import build_report
    from raysweep.report.publish import log_report, tracking_client
    from raysweep.report.tables import best_row
    from raysweep.report.text import text_table
    from raysweep.tracking import experiment_id_for, resolve_tracking_uri, ui_hint

    sweep, report, out = build_report(tracking_uri, experiment, out, parent_id, band_cut)
    if log:
        log_report(tracking_client(tracking_uri), sweep.parent_run_id or "", report.files)
    if as_json:
        _say(
            json.dumps(
                {
                    "experiment": sweep.name,
                    "sweep_run_id": sweep.parent_run_id,
                    "out": str(out),
                    "files": [str(p) for p in report.files],
                    "page": str(report.page),
                    "logged": log,
                    "rows": _records(report.table),
                    "grouped": _records(report.grouped) if report.grouped is not None else None,
                },
                indent=1,
            )
        )
        return out
    counts = report.table["status"].value_counts().to_dict()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    _say(
        f"raysweep: sweep {sweep.name!r}, run {sweep.parent_run_id}: {len(report.table)} "
        f"trials ({status})"
    )
    _say("")
    _say(text_table(report.table))
    if report.grouped is not None:
        _say("\nmean ± std over seeds:")
        _say(text_table(report.grouped, grouped=True))
    best = best_row(report.table, sweep.metric, sweep.goal)
    if best is not None:
        key = f"best_{sweep.metric}" if f"best_{sweep.metric}" in best else sweep.metric
        at = f" at epoch {best['best_epoch']}" if key == "best_test_acc" else ""
        _say(
            f"\nraysweep: best: {best['trial_id']} {best['name']}: {key} "
            f"{_fmt(best[key], key)}{at} (run {best['run_id']})"
        )
    names = ", ".join(p.name for p in report.files)
    _say(f"raysweep: wrote {out}/: {names}")
    _say(f"raysweep: open {report.page} in a browser: the tables and every figure in one page")
    uri = resolve_tracking_uri(tracking_uri)
    if log:
        _say(f"raysweep: logged them to the sweep run {sweep.parent_run_id}")
    _say(f"raysweep: {ui_hint(uri, experiment_id_for(uri, sweep.name))}")
    return out


# ------------------------------------------------------------------------------------- best


def run_best(
    experiment: str,
    tracking_uri: str | None,
    metric: str = "test_acc",
    goal: str | None = None,
    parent_id: str | None = None,
    register_as: str | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Print the best trial (params, metrics, model URI); optionally register its model."""
    from raysweep.plan import format_value
    from raysweep.report.best import best_run

    best = best_run(tracking_uri, experiment, metric, goal, parent_id)
    registered = None
    if register_as:
        registered = _register(best.model_uri, register_as, tracking_uri, best.run_id)
    data = {
        "experiment": experiment,
        "sweep_run_id": best.parent_run_id,
        "run_id": best.run_id,
        "trial_id": best.trial_id,
        "name": best.name,
        "status": best.status,
        "metric": best.metric,
        "goal": best.goal,
        "value": best.value,
        "swept": best.swept,
        "metrics": best.metrics,
        "params": best.params,
        "model_uri": best.model_uri,
        "registered": registered,
    }
    if as_json:
        _say(json.dumps(data, indent=1, default=str))
        return data
    shown = _fmt(best.value, metric)
    _say(
        f"best trial of {experiment!r} by {metric} ({best.goal}): "
        f"{best.trial_id} {best.name} = {shown}"
    )
    _say(f"  run id:   {best.run_id}  (sweep run {best.parent_run_id})")
    _say(f"  status:   {best.status}")
    swept = "  ".join(f"{k}={format_value(v)}" for k, v in best.swept.items()) or "(base)"
    _say(f"  swept:    {swept}")
    metrics = "  ".join(f"{k}={v:.4g}" for k, v in best.metrics.items())
    _say(f"  metrics:  {metrics}")
    _say(f"  model:    {best.model_uri or '(no model logged)'}")
    _say("  params:")
    width = max((len(k) for k in best.params), default=0)
    for key, value in best.params.items():
        _say(f"    {key.ljust(width)}  {value}")
    if registered:
        _say(
            f"registered: model {registered['name']!r} version {registered['version']} "
            f"({registered['uri']})"
        )
    return data


def _register(
    model_uri: str | None, name: str, tracking_uri: str | None, run_id: str
) -> dict[str, Any]:
    import mlflow

    from raysweep.tracking import resolve_tracking_uri

    if model_uri is None:
        raise UserError(f"run {run_id} logged no model: nothing to register")
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        version = mlflow.register_model(model_uri, name)
    except Exception as exc:  # noqa: BLE001 - MLflow's errors for a bad name or registry
        raise UserError(f"cannot register {model_uri} as {name!r}: {exc}") from None
    return {"name": name, "version": version.version, "uri": f"models:/{name}/{version.version}"}


# ---------------------------------------------------------------------------------- predict


def run_predict(
    model_uri: str,
    images: tuple[Path, ...],
    tracking_uri: str | None,
    top: int = 1,
    as_json: bool = False,
) -> list[Any]:
    """Print the predicted class and probability (top-k) of each image."""
    from raysweep.predict import collect_images, load_model, predict

    paths = collect_images(list(images))
    model, spec = load_model(model_uri, tracking_uri)
    predictions = predict(model, spec, paths, top=top)
    if as_json:
        _say(json.dumps([p.to_json() for p in predictions], indent=1))
        return predictions
    width = max(len(str(p.path)) for p in predictions)
    for p in predictions:
        ranked = "  ".join(f"{label} ({100 * prob:.1f}%)" for label, prob in p.top)
        _say(f"{str(p.path).ljust(width)}  {ranked}")
    return predictions


# ----------------------------------------------------------------------------------- export


def run_export(
    experiment: str,
    tracking_uri: str | None,
    fmt: str | None,
    out: Path | None,
    parent_id: str | None = None,
    all_sweeps: bool = False,
) -> Path:
    """Write one row per trial run (all params, final metrics) as Parquet or CSV."""
    from raysweep.report.build import safe_name
    from raysweep.report.export import export_table, write_export

    if fmt is None:
        fmt = "csv" if out is not None and out.suffix.lower() == ".csv" else "parquet"
    table = export_table(tracking_uri, experiment, parent_id, all_sweeps)
    out = out or Path(f"{safe_name(experiment)}-trials.{fmt}")
    write_export(table, out, fmt)
    _say(f"raysweep: wrote {len(table)} trial runs x {table.shape[1]} columns to {out}")
    return out
