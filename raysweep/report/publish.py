"""Log a built report on a run: the only MLflow write of the report package.

The report's files go to the root of the run (same-named artifacts replaced) through any object
with MLflow's `log_artifacts(run_id, local_dir)`: an `MlflowClient` for `raysweep report`. The
sweep driver instead routes them through its one writer (`raysweep.tracking.MlflowWriter`):

    files = stage(report.files, Path(tmp) / "logged")
    writer.submit(writer.log_dir, parent_id, str(files))
    writer.wait()  # the writer reads the files before their directory goes

`stage` copies exactly the report's files into a fresh directory, so neither the sweep.yaml and
plan.json copied next to them nor anything else in `--out` is uploaded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from raysweep.tracking import resolve_tracking_uri


class ArtifactLogger(Protocol):
    """What `log_report` needs: MLflow's `log_artifacts`, done when it returns."""

    def log_artifacts(self, run_id: str, local_dir: str) -> Any:
        """Log every file of `local_dir` at the root of run `run_id`."""


def stage(files: Iterable[Path], into: Path) -> Path:
    """Copies of `files` in the new directory `into` and nothing else; returns `into`."""
    into.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, into / path.name)
    return into


def log_report(target: ArtifactLogger, run_id: str, files: Iterable[Path]) -> None:
    """Log a report's files at the root of run `run_id` through `target.log_artifacts`."""
    with tempfile.TemporaryDirectory() as tmp:
        target.log_artifacts(run_id, str(stage(files, Path(tmp) / "report")))


def tracking_client(tracking_uri: str | None) -> Any:
    """A plain `MlflowClient` on the store at `tracking_uri` (a `log_report` target)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(resolve_tracking_uri(tracking_uri))
