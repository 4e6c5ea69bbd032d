"""Seen by headless Chromium (scripts/browser_check.py): the shared real sweep in the MLflow UI
(the runs table shows the sweep's parent run and every trial run by name), and report.html,
the page `raysweep report` writes, with every figure decoded (naturalWidth > 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

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


def _check_page(page: Path, shot: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "browser_check.py"),
            "--page",
            str(page),
            "--screenshot",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.timeout(900)
def test_report_page_of_48_trials_renders_every_figure(big_report, tmp_path: Path) -> None:
    pngs = [p for p in big_report.files if p.suffix == ".png"]
    shot = tmp_path / "page.png"
    proc = _check_page(big_report.page, shot)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok: {len(pngs)} images" in proc.stdout
    assert proc.stdout.count("  ok      ") == len(pngs) >= 12
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(1500)
def test_real_sweeps_report_page_renders(cli_sweep: dict, tmp_path: Path) -> None:
    if not (cli_sweep["work"] / "mlflow.db").is_file():
        pytest.fail(f"the shared sweep did not run:\n{cli_sweep['proc'].stdout[-3000:]}")
    out = tmp_path / "report"
    args = ["report", "e2e-digits", "--tracking-uri", cli_sweep["uri"], "--out", str(out)]
    report = run_cli([*args, "--no-log"], cwd=cli_sweep["work"])
    assert report.returncode == 0, report.stdout + report.stderr
    pngs = sorted(out.glob("*.png"))
    proc = _check_page(out / "report.html", tmp_path / "page.png")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok: {len(pngs)} images" in proc.stdout and len(pngs) >= 8
