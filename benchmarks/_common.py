"""Helpers shared by the benchmark scripts: temp sweep files and timed `raysweep run`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RAYSWEEP = ROOT / ".venv" / "bin" / "raysweep"


def write_spec(work: Path, spec: dict, name: str = "sweep.yaml") -> Path:
    """Write a sweep file into `work`."""
    path = work / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed_run(spec: Path, work: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one `raysweep run` (including Ray's start), and its process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(RAYSWEEP), "run", str(spec), "--storage", str(work / "ray"), "--quiet", *extra],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - t0, proc
