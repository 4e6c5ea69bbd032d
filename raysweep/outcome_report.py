"""How `raysweep run` ends: what it prints once the sweep is over, and its exit code.

Exit codes: 0 every trial ended normally (finished, stopped by the scheduler, early-stopped,
diverged), 1 some trial failed (each is listed with the last line of its error, a lost process
in a few words: `raysweep.trial_errors`), 130 the sweep was interrupted (the unfinished trials
are counted and `--resume` is printed to finish them).
Bad input never gets here: it is a `UserError`, exit 2, before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raysweep.records import TrialStatus
from raysweep.trial_errors import error_reason

if TYPE_CHECKING:
    from raysweep.config import SweepSpec
    from raysweep.records import TrialOutcome

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


@dataclass(frozen=True)
class SweepEnd:
    """The end of a run: `lines` to print in order (the table is one entry), the exit code."""

    lines: list[str]
    exit_code: int


def sweep_end(
    outcomes: Iterable[TrialOutcome],
    spec: SweepSpec,
    spec_path: str | Path,
    overrides: Iterable[str],
    tracking_uri: str | None,
    studies: Iterable[str] = (),
) -> SweepEnd:
    """The end of `raysweep run SPEC_PATH [--set OVERRIDE ...]`: looks up the sweep's MLflow
    experiment (for the link to its runs), then `summarize`s the outcomes."""
    from raysweep.tracking import experiment_id_for, resolve_tracking_uri, ui_hint

    uri = resolve_tracking_uri(tracking_uri)
    where = ui_hint(uri, experiment_id_for(uri, spec.name))
    rerun = rerun_command(spec_path, overrides, studies)
    return summarize(outcomes, spec.sweep.metric, spec.sweep.goal, where, rerun)


def summarize(
    outcomes: Iterable[TrialOutcome], metric: str, goal: str, where: str, rerun: str
) -> SweepEnd:
    """The summary table (best first by `metric`/`goal`), one line per failed trial, where the
    results are (`where`: how to open them in MLflow) and, if trials were left unfinished, the
    command that finishes them (`rerun` plus `--resume`); with the exit code that goes with it.
    """
    from raysweep.summary import summary_rows, summary_text

    outcomes = list(outcomes)
    failed = [o for o in outcomes if o.status == TrialStatus.FAILED]
    killed = [o for o in outcomes if o.status == TrialStatus.KILLED]
    lines = ["", summary_text(summary_rows(outcomes, metric, goal))]
    for out in failed:
        lines.append(
            f"raysweep: trial {out.trial.trial_id} ({out.trial.name}) {out.status}: "
            f"{error_reason(out.error or '') or out.status}"
        )
    lines += ["", f"raysweep: results in MLflow: {where}"]
    if killed:
        lines.append(
            f"raysweep: interrupted: {len(killed)} trials unfinished; "
            f"finish them with: {rerun} --resume"
        )
        return SweepEnd(lines, EXIT_INTERRUPTED)
    return SweepEnd(lines, EXIT_FAILED if failed else EXIT_OK)


def rerun_command(
    spec_path: str | Path, overrides: Iterable[str], studies: Iterable[str] = ()
) -> str:
    """The `raysweep run` command line that runs this sweep again, as the person typed it
    (with its `--study` selection, which `--resume` must be given again)."""
    selected = ",".join(studies)
    return " ".join(
        [
            "raysweep run",
            str(spec_path),
            *(f"--set {o}" for o in overrides),
            *([f"--study {selected}"] if selected else []),
        ]
    )
