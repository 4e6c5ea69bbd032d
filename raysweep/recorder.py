"""The Tune callback on the sweep driver: per-trial MLflow runs and console progress.

Tune calls it from its event loop; every MLflow write is queued on the one writer thread.
It is pickled with Tune's experiment state: it pickles as a reference to the live recorder of
the process that unpickles it (`current_recorder`), so a resumed sweep gets the new one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune

from raysweep.progress import Console
from raysweep.sweep import TrialOutcome, inline_retries
from raysweep.tracking import TAG_STATUS, TAG_TRIAL, MlflowWriter

_CURRENT: list[SweepRecorder] = []


def current_recorder() -> SweepRecorder:
    """The recorder of this process's running sweep (what an unpickled recorder becomes)."""
    return _CURRENT[-1]


class SweepRecorder(tune.Callback):
    """Tune callback on the driver: MLflow child runs and console progress per trial."""

    def __init__(
        self,
        writer: MlflowWriter,
        parent_id: str,
        outcomes: dict[str, TrialOutcome],
        console: Console,
    ) -> None:
        self.writer = writer
        self.parent_id = parent_id
        self.outcomes = outcomes
        self.console = console
        _CURRENT.append(self)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # The writer's thread and the console cannot be pickled; see the module docstring.
        return current_recorder, ()

    def _outcome(self, trial: Any) -> TrialOutcome | None:
        """The trial's outcome; None for one that ended in an earlier run (already recorded)."""
        out = self.outcomes[trial.config["trial"]["trial_id"]]
        return None if out.recorded else out

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        if not (out.failures and out.started):  # a retried trial's duration counts from its start
            out.started = time.time()
        out.status = "running"
        t = out.trial
        tags = {
            TAG_TRIAL: t.trial_id,
            "raysweep.studies": ",".join(t.studies),
            "raysweep.fingerprint": t.fingerprint,
            TAG_STATUS: "running",
        }
        if out.run_id is None:
            config = t.config.model_dump(mode="json")
            # Not waited for: the writer may be busy logging an earlier trial's model, and
            # Tune's event loop (which starts the next trials) must not wait behind it.
            out.run_id = self.writer.submit(
                self.writer.create_child, self.parent_id, t.name, tags, config
            )
        else:  # resumed: the same MLflow run goes on
            self.writer.submit(self.writer.reopen, out.run_id, tags)
        self.console.trial_started(out)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        epoch = int(result.get("epoch", 0))
        resumed_from = int(result.get("resumed_from") or 0)
        if resumed_from:
            out.restarts += 1
            self.console.trial_resumed(out, resumed_from)
            if out.run_id:
                tags = {"raysweep.restarts": str(out.restarts)}
                self.writer.submit(self.writer.log_final, out.run_id, {}, tags)
        if epoch <= out.last_epoch:
            # Already logged: a restarted worker redid an epoch, or a trial whose training had
            # ended replays its last result (the driver died while recording it; the record is
            # finished from it).
            if epoch == out.last_epoch:
                out.metrics = dict(result)
                out.checkpoint_path = result.get("checkpoint_path") or out.checkpoint_path
            return
        first = out.last_epoch == 0
        out.last_epoch = epoch
        out.metrics = dict(result)
        out.checkpoint_path = result.get("checkpoint_path") or out.checkpoint_path
        if out.run_id:
            self.writer.submit(self.writer.log_epoch, out.run_id, out.metrics)
            if first:
                tags = {f"raysweep.{k}": result.get(k, "") for k in ("node_id", "host", "device")}
                self.writer.submit(self.writer.log_final, out.run_id, {}, tags)
        self.console.trial_result(out, self.outcomes)

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        """An inline trial's checkpoint, kept by Tune (worker groups report theirs as a metric)."""
        out = self._outcome(trial)
        if out is not None:
            out.checkpoint_path = checkpoint.path

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        m = out.metrics
        if m.get("diverged"):
            out.status = "diverged"
        elif m.get("stopped_early"):
            out.status = "early_stopped"
        elif m and not m.get("is_last_epoch"):
            out.status = "stopped"
        else:
            out.status = "finished"
        self._close(out, "FINISHED")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """An inline trial failed and Tune restarts it (a worker group retries inside Train)."""
        out = self._outcome(trial)
        if out is None:
            return
        out.failures += 1
        limit = inline_retries([o.trial for o in self.outcomes.values()])
        self.console.trial_retrying(out, _error_text(trial), out.failures, limit)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        out.status = "failed"
        out.error = _error_text(trial)
        if out.run_id:
            self.writer.submit(self.writer.log_text, out.run_id, out.error, "error.txt")
        self._close(out, "FAILED")

    def _close(self, out: TrialOutcome, mlflow_status: str) -> None:
        out.ended = time.time()
        m = out.metrics
        if out.run_id:
            keys = ("best_test_acc", "best_epoch", "stopped_early", "diverged")
            final = {k: m[k] for k in keys if k in m}
            tags = {"raysweep.epochs_run": m.get("epoch", 0)}
            self.writer.submit(self.writer.log_final, out.run_id, final, tags)
            if out.checkpoint_path:
                self.writer.submit(
                    self.writer.log_checkpoint,
                    out.run_id,
                    out.checkpoint_path,
                    out.trial.config.train.log_model,
                )
            # The status tag last: `--resume` takes a run that has it as completely recorded.
            self.writer.submit(self.writer.log_final, out.run_id, {}, {TAG_STATUS: out.status})
            self.writer.submit(self.writer.end, out.run_id, mlflow_status)
        self.console.trial_done(out, self.outcomes)


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text()
    return str(getattr(trial, "error_msg", "") or "the trial failed (no error text from Ray)")
