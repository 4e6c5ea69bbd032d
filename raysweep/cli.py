"""The `raysweep` command: thin click commands over the library (imports stay lazy so that
`--help`, `validate` and `plan` never load torch or ray)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from raysweep import commands
from raysweep.errors import UserError

SPEC_ARG = click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
SET_OPT = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a field of the sweep file, e.g. --set train.epochs=2 (value read as YAML).",
)
TRACKING_OPT = click.option(
    "--tracking-uri",
    metavar="URI",
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
)
JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


class _State:
    debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and Ray's own logs.")
@click.version_option(package_name="raysweep")
def cli(debug: bool) -> None:
    """Sweep CNN architectures and training hyperparameters on Ray, tracked in MLflow.

    \b
    raysweep validate experiments/quickstart.yaml   # check a sweep file
    raysweep plan experiments/quickstart.yaml       # the trials it will run
    raysweep run experiments/quickstart.yaml        # run them (Ray Tune + Ray Train)
    raysweep models                                 # the model zoo
    """
    _State.debug = debug


def _load(spec: Path, overrides: tuple[str, ...]) -> tuple[Any, list[Any]]:
    from raysweep.config import load_spec
    from raysweep.plan import expand

    sweep, _ = load_spec(spec, overrides)
    return sweep, expand(sweep, str(spec))


@cli.command()
@SPEC_ARG
@SET_OPT
def validate(spec: Path, overrides: tuple[str, ...]) -> None:
    """Check a sweep file (schema, axes, every expanded trial) without running anything."""
    sweep, trials = _load(spec, overrides)
    noun = "trial" if len(trials) == 1 else "trials"
    click.echo(f"{spec}: ok: sweep '{sweep.name}', {len(trials)} {noun}")


@cli.command()
@SPEC_ARG
@SET_OPT
@JSON_OPT
@click.option("--address", metavar="ADDR", help="Check placement against this Ray cluster.")
def plan(spec: Path, overrides: tuple[str, ...], as_json: bool, address: str | None) -> None:
    """Print the trials `run` will run: resolved parameters, count, resources per trial."""
    from raysweep.planview import plan_report

    sweep, trials = _load(spec, overrides)
    click.echo(plan_report(sweep, trials, as_json=as_json, address=address))


@cli.command()
@SPEC_ARG
@SET_OPT
@TRACKING_OPT
@click.option(
    "--storage",
    metavar="PATH",
    envvar="RAYSWEEP_STORAGE",
    help="Where trial checkpoints go: a path, or s3://, gs://, NFS on a cluster "
    "(default $RAYSWEEP_STORAGE or ~/ray_results).",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="Ray cluster address ('auto' on a cluster node; default $RAY_ADDRESS or a local Ray).",
)
@click.option("--max-concurrent", type=click.IntRange(min=1), help="At most N trials at once.")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary, no per-epoch lines.")
@click.option(
    "--resume", is_flag=True, help="Finish this sweep's last run (after Ctrl-C or a crash)."
)
def run(
    spec: Path,
    overrides: tuple[str, ...],
    tracking_uri: str | None,
    storage: str | None,
    address: str | None,
    max_concurrent: int | None,
    quiet: bool,
    resume: bool,
) -> None:
    """Run a sweep: every trial a Ray Train TorchTrainer job, scheduled by Ray Tune."""
    from raysweep.progress import Console
    from raysweep.runner import run_sweep
    from raysweep.summary import summary_rows, summary_text
    from raysweep.sweep import RunOptions
    from raysweep.tracking import resolve_tracking_uri, ui_hint

    sweep, trials = _load(spec, overrides)
    console = Console(quiet=quiet)
    options = RunOptions(
        tracking_uri=tracking_uri,
        storage=storage,
        address=address,
        max_concurrent=max_concurrent,
        resume=resume,
        debug=_State.debug,
    )
    outcomes = run_sweep(sweep, trials, spec.read_text(), options, console)
    rows = summary_rows(list(outcomes.values()), sweep.sweep.metric, sweep.sweep.goal)
    console.say("")
    console.say(summary_text(rows))
    failed = [o for o in outcomes.values() if o.status == "failed"]
    killed = [o for o in outcomes.values() if o.status == "killed"]
    for out in failed:
        last = (out.error or out.status).strip().splitlines()[-1:]
        console.say(
            f"raysweep: trial {out.trial.trial_id} ({out.trial.name}) {out.status}: "
            f"{last[0] if last else ''}"
        )
    uri = resolve_tracking_uri(tracking_uri)
    from raysweep.tracking import experiment_id_for

    console.say(
        f"\nraysweep: results in MLflow: {ui_hint(uri, experiment_id_for(uri, sweep.name))}"
    )
    if killed:
        again = " ".join(["raysweep run", str(spec), *(f"--set {o}" for o in overrides)])
        console.say(
            f"raysweep: interrupted: {len(killed)} trials unfinished; "
            f"finish them with: {again} --resume"
        )
        sys.exit(130)
    if failed:
        sys.exit(1)


@cli.command()
@JSON_OPT
@click.option(
    "--input",
    "input_shape",
    default="3x32x32",
    metavar="CxHxW",
    help="Input shape for the parameter counts (default 3x32x32).",
)
@click.option("--num-classes", default=10, show_default=True, type=click.IntRange(min=2))
def models(as_json: bool, input_shape: str, num_classes: int) -> None:
    """List every registered model with its parameter count."""
    from raysweep.models import describe_models

    try:
        c, h, w = (int(v) for v in input_shape.lower().split("x"))
    except ValueError:
        raise UserError(f"--input {input_shape!r}: expected CxHxW, e.g. 1x28x28") from None
    if h != w:
        raise UserError(f"--input {input_shape!r}: images must be square")
    rows = describe_models(in_channels=c, image_size=h, num_classes=num_classes)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'model'.ljust(width)}  {'params':>12}  source")
    for r in rows:
        click.echo(f"{r['name'].ljust(width)}  {r['params']:>12,}  {r['source']}")


commands.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print `raysweep: error: ...` and exit 2, without a traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="raysweep", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.echo(f"raysweep: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("raysweep: interrupted", err=True)
        sys.exit(130)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"raysweep: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
