"""The shared real sweep in the MLflow UI, seen by headless Chromium (scripts/browser_check.py):
the runs table shows the sweep's parent run and every trial run by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.mark.timeout(1500)  # `mlflow ui` alone took minutes to start on a loaded 2-core machine
def test_mlflow_ui_shows_parent_and_children(cli_sweep: dict, tmp_path: Path) -> None:
    if not (cli_sweep["work"] / "mlflow.db").is_file():
        pytest.fail(f"the shared sweep did not run:\n{cli_sweep['proc'].stdout[-3000:]}")
    shot = tmp_path / "ui.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "browser_check.py"),
            "--tracking-uri",
            cli_sweep["uri"],
            "--experiment",
            "e2e-digits",
            "--screenshot",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "e2e-digits sweep" in proc.stdout  # the parent run's name
    assert proc.stdout.count("found  ") == 7  # the parent and its 6 trials
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
