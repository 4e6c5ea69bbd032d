"""The `raysweep` command line, and only its face: flags, help, how errors look, exit codes.

One click group (`cli`), the options its commands share as module-level constants, and one thin
command per verb: it parses its flags, lazily imports the library function that does the work
(`raysweep.commands`, `raysweep.runner`, `raysweep.outcome_report`) and calls it. Nothing heavy
is imported here, so `raysweep --help`, `validate` and `plan` never load torch, ray or mlflow.

How errors look (`raysweep: error: ...`, exit 2; Ctrl-C exit 130) is the group's job:
`raysweep.cli_errors.RaysweepGroup`.
"""

from __future__ import annotations

import gc
from pathlib import Path

import click

from raysweep.cli_errors import RaysweepGroup, debug_flag

_SWEEP_RAN = False  # set by `run` once a sweep has run in this process (see `main`)

# ------------------------------------------------------------------------ shared options

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
STUDY_OPT = click.option(
    "--study",
    "studies",
    multiple=True,
    metavar="NAME",
    help="Only this study's trials (repeat it, or NAME,NAME, for several); trial ids stay "
    "those of the whole sweep.",
)
EXPERIMENT_ARG = click.argument("experiment")
RUN_OPT = click.option(
    "--run",
    "parent_id",
    metavar="RUN_ID",
    help="The sweep (parent) run to use; default: the experiment's newest sweep.",
)

# ---------------------------------------------------------------------------------- group


@click.group(cls=RaysweepGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    # `--debug` stays in the root context's params: RaysweepGroup.invoke and `run` read it there.


# ------------------------------------------------------------------- sweep files and runs


@cli.command()
@SPEC_ARG
@SET_OPT
def validate(spec: Path, overrides: tuple[str, ...]) -> None:
    """Check a sweep file (schema, axes, every expanded trial) without running anything."""
    from raysweep.commands import run_validate

    run_validate(spec, overrides)


@cli.command()
@SPEC_ARG
@SET_OPT
@JSON_OPT
@click.option("--address", metavar="ADDR", help="Check placement against this Ray cluster.")
@STUDY_OPT
def plan(
    spec: Path,
    overrides: tuple[str, ...],
    as_json: bool,
    address: str | None,
    studies: tuple[str, ...],
) -> None:
    """Print the trials `run` will run: resolved parameters, count, resources per study."""
    from raysweep.commands import run_plan

    run_plan(spec, overrides, as_json, address, studies)


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
@STUDY_OPT
@click.pass_context
def run(
    ctx: click.Context,
    spec: Path,
    overrides: tuple[str, ...],
    tracking_uri: str | None,
    storage: str | None,
    address: str | None,
    max_concurrent: int | None,
    quiet: bool,
    resume: bool,
    studies: tuple[str, ...],
) -> None:
    """Run a sweep: trials scheduled by Ray Tune, trained in their Tune trial (one worker) or
    as Ray Train TorchTrainer jobs (several workers), recorded in MLflow."""
    from raysweep.commands import load_sweep
    from raysweep.outcome_report import sweep_end
    from raysweep.plan import select_studies
    from raysweep.progress import Console
    from raysweep.runner import run_sweep
    from raysweep.sweep import RunOptions

    sweep, trials = load_sweep(spec, overrides)
    trials, selected = select_studies(sweep, trials, studies)
    console = Console(quiet=quiet)
    options = RunOptions(
        tracking_uri=tracking_uri,
        storage=storage,
        address=address,
        max_concurrent=max_concurrent,
        resume=resume,
        debug=debug_flag(ctx),
        studies=selected,
    )
    outcomes = run_sweep(sweep, trials, spec.read_text(), options, console)
    global _SWEEP_RAN  # noqa: PLW0603 - read by `main` once the process is ending
    _SWEEP_RAN = True
    end = sweep_end(outcomes.values(), sweep, spec, overrides, tracking_uri, selected)
    for line in end.lines:
        console.say(line)
    ctx.exit(end.exit_code)


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
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="List the model factories this Python file defines instead (nets.py).",
)
def models(as_json: bool, input_shape: str, num_classes: int, file: Path | None) -> None:
    """List every registered model (or a file's factories) with its parameter count."""
    from raysweep.commands import run_models

    run_models(input_shape, num_classes, as_json, file)


# ------------------------------------------------------------ comparing a sweep's runs


@cli.command()
@EXPERIMENT_ARG
@TRACKING_OPT
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the report (default ./raysweep-report/<experiment>).",
)
@RUN_OPT
@click.option("--no-log", is_flag=True, help="Do not log the report to the sweep run.")
@JSON_OPT
@click.option(
    "--band-cut",
    type=click.Choice(["none", "shortest"]),
    default="none",
    show_default=True,
    help="Where each loss band ends: at the last step any of its trials reached, or at its "
    "shortest trial's last step (seed 003's script).",
)
def report(
    experiment: str,
    tracking_uri: str | None,
    out: Path | None,
    parent_id: str | None,
    no_log: bool,
    as_json: bool,
    band_cut: str,
) -> None:
    """(Re)build a sweep's summary table, figures and report.html from MLflow.

    Works on finished and interrupted sweeps and on stores from another machine; writes
    the files to --out and to the sweep's parent run, and prints the table.
    """
    from raysweep.commands import run_report

    run_report(experiment, tracking_uri, out, parent_id, not no_log, as_json, band_cut)


@cli.command()
@EXPERIMENT_ARG
@click.option("--metric", default="test_acc", show_default=True, help="Rank trials by this.")
@click.option("--goal", type=click.Choice(["max", "min"]), help="Default: the sweep's.")
@TRACKING_OPT
@RUN_OPT
@click.option("--register", "register_as", metavar="NAME", help="Register its model.")
@JSON_OPT
def best(
    experiment: str,
    metric: str,
    goal: str | None,
    tracking_uri: str | None,
    parent_id: str | None,
    register_as: str | None,
    as_json: bool,
) -> None:
    """The best trial of a sweep: its params, metrics and model URI.

    --register NAME puts its model into the MLflow Model Registry.
    """
    from raysweep.commands import run_best

    run_best(experiment, tracking_uri, metric, goal, parent_id, register_as, as_json)


@cli.command()
@click.argument("model_uri")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@TRACKING_OPT
@click.option("--top", default=1, show_default=True, type=click.IntRange(min=1))
@JSON_OPT
def predict(
    model_uri: str,
    images: tuple[Path, ...],
    tracking_uri: str | None,
    top: int,
    as_json: bool,
) -> None:
    """Classify PNG/JPEG images (files or directories) with a logged model.

    MODEL_URI is runs:/<run_id>/model or models:/<name>/<version>; images get the
    transform the model was trained with (size, channels, mean/std).
    """
    from raysweep.commands import run_predict

    run_predict(model_uri, images, tracking_uri, top, as_json)


@cli.command()
@EXPERIMENT_ARG
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    help="Default: from --out's suffix, else parquet.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (default ./<experiment>-trials.<format>).",
)
@TRACKING_OPT
@RUN_OPT
@click.option("--all-sweeps", is_flag=True, help="Every sweep run of the experiment.")
def export(
    experiment: str,
    fmt: str | None,
    out: Path | None,
    tracking_uri: str | None,
    parent_id: str | None,
    all_sweeps: bool,
) -> None:
    """One row per trial run (every param, final metrics) as Parquet or CSV."""
    from raysweep.commands import run_export

    run_export(experiment, tracking_uri, fmt, out, parent_id, all_sweeps)


def main(argv: list[str] | None = None) -> None:
    """Entry point (`raysweep` in pyproject.toml): the group, under its name, in click's
    standalone mode (it exits with the command's code; errors show themselves). As the
    `raysweep` command (no `argv`), a process that ran a sweep skips Python's teardown
    (`raysweep.runner.end_process`)."""
    try:
        cli.main(args=argv, prog_name="raysweep")
    except SystemExit as done:
        if argv is None and _SWEEP_RAN:
            from raysweep.runner import end_process

            end_process(done.code)
        raise
    finally:
        gc.unfreeze()  # what a sweep set aside from the garbage collector (raysweep.runner)


if __name__ == "__main__":
    main()
