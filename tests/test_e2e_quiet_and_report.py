"""On the shared real sweep (`cli_sweep`, conftest: ASHA, a trial that fails, one that diverges):
the terminal holds raysweep's own lines only, other libraries' lines are in the run's log file,
and the report logged on its parent run passes `raysweep.report.verify` (what scripts/smoke.py
checks on every cpu_smoke file). No sweep of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# raysweep's lines: `raysweep: ...`, event lines `[m:ss] ...`, the end-of-run table.
OWN = re.compile(r"raysweep: |\[ *\d+:\d\d\] |trial_id |t\d+ ")


def test_the_terminal_shows_raysweeps_lines_and_the_log_the_rest(cli_sweep: dict) -> None:
    proc = cli_sweep["proc"]
    output = proc.stdout + proc.stderr
    assert [line for line in output.splitlines() if line and not OWN.match(line)] == []
    found = re.search(r"^raysweep: other libraries' messages \(.*?\): (\S+)$", proc.stdout, re.M)
    assert found, proc.stdout
    log = Path(found[1]).read_text()
    # Ray's start, MLflow making its empty store (a new raysweep cache, see `cli_sweep`),
    # Tune's own lines: all in the file.
    assert "INFO ray._private.worker: Started a local Ray instance" in log, log
    assert "INFO mlflow.store.db.utils: Creating initial MLflow database tables" in log, log
    assert " ray.tune." in log, log


def test_the_logged_report_holds_every_study_and_trial(cli_sweep: dict) -> None:
    from raysweep.config import load_spec
    from raysweep.plan import expand
    from raysweep.report.verify import check_report
    from tests.conftest import CLI_SWEEP

    spec_path = cli_sweep["work"] / "sweep.yaml"
    spec, _ = load_spec(spec_path, ())
    trials = expand(spec, str(spec_path))
    found, problems = check_report(cli_sweep["uri"], CLI_SWEEP["name"], trials)
    assert problems == [], problems
    assert found["summary_rows"] == len(trials)
