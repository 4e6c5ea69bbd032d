"""The Tune callback on the sweep driver: per-trial MLflow runs and console progress.

Tune calls it from its event loop; every MLflow write is queued on the one writer thread.
It is pickled with Tune's experiment state: it pickles as a reference to the live recorder of
the process that unpickles it (`current_recorder`), so a resumed sweep gets the new one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.progress_reporter import TrialProgressCallback

from raysweep import faults
from raysweep.plan import Trial
from raysweep.progress import Console
from raysweep.records import (
    FINAL_KEYS,
    PARAM_NUM_PARAMS,
    TAG_ERROR,
    TAG_FINGERPRINT,
    TAG_OVERRIDES,
    TAG_RESTARTS,
    TAG_STATUS,
    TAG_TRIAL,
    TrialOutcome,
    TrialStatus,
)
from raysweep.tracking import MlflowWriter, trial_params
from raysweep.trial_dirs import mark_failed, mark_stopped, read_done, trial_dir_of
from raysweep.trial_errors import error_reason

log = logging.getLogger(__name__)
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
        experiment_path: str,
    ) -> None:
        self.writer = writer
        self.parent_id = parent_id
        self.outcomes = outcomes
        self.console = console
        self.experiment_path = experiment_path  # <storage>/<experiment dir>: the done markers
        _CURRENT.append(self)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # The writer's thread and the console cannot be pickled; see the module docstring.
        return current_recorder, ()

    def _outcome(self, trial: Any) -> TrialOutcome | None:
        """The trial's outcome; None for one that ended in an earlier run (already recorded)."""
        out = self._known(trial)
        return None if out.recorded else out

    def _known(self, trial: Any) -> TrialOutcome:
        """The outcome of a Tune trial; a trial an adaptive search just made gets a new one."""
        planned = trial.config["trial"]
        out = self.outcomes.get(planned["trial_id"])
        if out is None:
            out = self.outcomes[planned["trial_id"]] = TrialOutcome(Trial.from_json(planned))
        return out

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        # Tune's FailureConfig is one number for the sweep (its largest); each trial is held
        # to its own `train.max_failures` (Trial.should_recover reads this attribute).
        trial.max_failures = out.trial.config.train.max_failures
        if not (out.failures and out.started):  # a retried trial's duration counts from its start
            out.started = time.time()
        out.status = TrialStatus.RUNNING
        self._ensure_run(out)
        self.console.trial_started(out)

    def _ensure_run(self, out: TrialOutcome) -> None:
        """Create the trial's MLflow run, or mark the one of an earlier attempt RUNNING again."""
        t = out.trial
        tags = {
            TAG_TRIAL: t.trial_id,
            "raysweep.studies": ",".join(t.studies),
            TAG_FINGERPRINT: t.fingerprint,
            # How it trains (its study's resources): `inline` or `torch_trainer`.
            "raysweep.executor": "inline" if t.resources.inline else "torch_trainer",
            # What the sweep set for this trial: `--resume` of an adaptive search reads it back.
            TAG_OVERRIDES: json.dumps(t.overrides, sort_keys=True),
            TAG_STATUS: TrialStatus.RUNNING,
        }
        config = t.config.model_dump(mode="json")
        if out.run_id is None:
            # Not waited for: the writer may be busy logging an earlier trial's model, and
            # Tune's event loop (which starts the next trials) must not wait behind it.
            out.run_id = self.writer.submit(
                self.writer.create_child, self.parent_id, t.name, tags, config
            )
        else:  # resumed: the same MLflow run goes on
            self.writer.submit(self.writer.reopen, out.run_id, tags, trial_params(config))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        epoch = int(result.get("epoch", 0))
        resumed_from = int(result.get("resumed_from") or 0)
        first = out.last_epoch == 0  # (before the epochs it missed are filled in below)
        if resumed_from:
            out.restarts += 1
            self.console.trial_resumed(out, resumed_from)
            if out.run_id:
                tags = {TAG_RESTARTS: str(out.restarts)}
                self.writer.submit(self.writer.log_final, out.run_id, {}, tags)
            self._log_missed(out, result.get("epochs_before") or [], resumed_from)
        if epoch <= out.last_epoch:
            # Already logged: a restarted worker redid an epoch, or a trial whose training had
            # ended replays its last result (the driver died while recording it; the record is
            # finished from it).
            if epoch == out.last_epoch:
                out.metrics = dict(result)
                out.checkpoint_path = result.get("checkpoint_path") or out.checkpoint_path
            return
        out.last_epoch = epoch
        out.metrics = dict(result)
        out.checkpoint_path = result.get("checkpoint_path") or out.checkpoint_path
        if out.run_id:
            if first:  # before the epoch: `--resume` logs it again only if no epoch landed
                self._log_where(out, result)
            self.writer.submit(self.writer.log_epoch, out.run_id, out.metrics)
        self.console.trial_result(out, self.outcomes)

    def _log_missed(self, out: TrialOutcome, before: list[dict[str, Any]], upto: int) -> None:
        """Epochs up to `upto` (the checkpoint a trial went on from) whose results never reached
        this driver (lost with the process that sent them), logged from the checkpoint's own
        history so the run's epochs stay gap-free."""
        for epoch in range(out.last_epoch + 1, min(upto, len(before)) + 1):
            if out.run_id:
                metrics = {**before[epoch - 1], "epoch": epoch}
                self.writer.submit(self.writer.log_epoch, out.run_id, metrics)
            out.last_epoch = epoch

    def _log_where(self, out: TrialOutcome, result: dict[str, Any]) -> None:
        """Where the trial ran (tags) and its model's size (a param), from its first result."""
        tags = {f"raysweep.{k}": result.get(k, "") for k in ("node_id", "host", "device")}
        self.writer.submit(self.writer.log_final, out.run_id, {}, tags)
        if "num_params" in result:
            params = {PARAM_NUM_PARAMS: str(int(result["num_params"]))}
            self.writer.submit(self.writer.log_params, out.run_id, params)

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
        if out.checkpoint_path is None:
            # Restarted from its last checkpoint only to report its end again (its process died
            # between that checkpoint and its done marker): no event of this run named one.
            out.checkpoint_path = self._ended_checkpoint(out, trial)
        out.status = _ended_status(out.metrics)
        if out.status == TrialStatus.STOPPED:
            self._keep_stop(out)
        self._close(out)

    def _keep_stop(self, out: TrialOutcome) -> None:
        """A stopped trial's done marker, so that a crash before Tune saves the stop does not
        let it train on after `--resume` (raysweep.trial_dirs.mark_stopped)."""
        try:
            mark_stopped(self.experiment_path, out.trial.trial_id, out.metrics, out.checkpoint_path)
        except Exception as exc:  # noqa: BLE001 - best effort: without it, it only trains on
            log.warning("%s: could not keep its stop in its directory: %s", out.trial.trial_id, exc)

    def _ended_checkpoint(
        self, out: TrialOutcome, trial: Any, done: dict[str, Any] | None = None
    ) -> str | None:
        """The checkpoint an ended trial's record is finished from where no event named it:
        its done marker's (`done`, read if not given), else Tune's record of its latest."""
        if done is None:
            done = read_done(self.experiment_path, out.trial.trial_id) or {}
        return done.get("checkpoint_path") or (trial.checkpoint.path if trial.checkpoint else None)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Record the trials Tune says ended that no Tune event told this recorder about.

        After a driver crash, Tune's saved state can say a trial ended (so a resumed Tune does
        not run it again) while its MLflow run was never finished: its last result or error,
        and its done marker, finish the record. Trials Tune did not end (Ctrl-C) stay unfinished.
        """
        for trial in trials:
            out = self._known(trial)
            if out.recorded or out.status.ended:
                continue
            if trial.status == trial.ERROR:
                self.record_ended(out, {}, error=error_text(trial))
            elif trial.status == trial.TERMINATED:
                done = read_done(self.experiment_path, out.trial.trial_id) or {}
                metrics = {**(trial.last_result or {}), **done}
                if not metrics.get("epoch"):
                    continue  # no epoch ever ended: nothing to record; it stays unfinished
                checkpoint = self._ended_checkpoint(out, trial, done)
                self.record_ended(out, metrics, checkpoint_path=checkpoint)

    def record_ended(
        self,
        out: TrialOutcome,
        metrics: dict[str, Any],
        error: str | None = None,
        checkpoint_path: str | None = None,
    ) -> None:
        """Record a trial that ended where no Tune event reached this recorder.

        A trial that failed before Tune ran it (its model cannot be built), or one whose end
        Tune saved before the driver died, so a resumed Tune never runs it again: its MLflow
        run is created if it has none, filled from its last result and checkpoint, and closed.
        """
        if out.recorded:
            return
        out.started = out.started or time.time()
        self._ensure_run(out)
        if metrics and metrics.get("epoch", 0) >= out.metrics.get("epoch", 0):
            out.metrics = dict(metrics)
        out.checkpoint_path = checkpoint_path or out.checkpoint_path
        if error is not None:
            out.status, out.error = TrialStatus.FAILED, error
            self.writer.submit(self.writer.log_text, out.run_id, error, "error.txt")
            self._close(out)
            return
        if out.run_id and metrics:
            self._log_where(out, metrics)
        out.status = _ended_status(out.metrics)
        self._close(out)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial's process failed or died and Tune restarts it from its newest checkpoint."""
        out = self._outcome(trial)
        if out is None:
            return
        from raysweep.placement import placement_error

        if placement_error(trial) is not None:
            return  # not retried: PlacementGuard fails it before it starts again (and says so)
        # Tune's own count (kept across --resume, and without preemptions) decides the retry.
        out.failures = int(getattr(trial, "num_failures", out.failures + 1))
        limit = out.trial.config.train.max_failures
        self.console.trial_retrying(out, error_text(trial), out.failures, limit)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        out = self._outcome(trial)
        if out is None:
            return
        out.status = TrialStatus.FAILED
        out.error = error_text(trial)
        if out.run_id:
            self.writer.submit(self.writer.log_text, out.run_id, out.error, "error.txt")
        self._close(out)

    def _failed(self, out: TrialOutcome) -> str:
        """The failed trial's error in a few words (its run's tag), also left in its Tune
        directory: a resumed Tune whose saved state is older than the failure starts the trial
        again, and the trial then ends at once instead of training for nothing
        (`trial_dirs.ended_before`)."""
        reason = error_reason(out.error or "")[:500] or "failed"
        try:
            mark_failed(self.experiment_path, out.trial.trial_id, reason)
        except Exception as exc:  # noqa: BLE001 - best effort: without it the trial only trains again
            log.warning(
                "%s: could not mark it failed in its directory: %s", out.trial.trial_id, exc
            )
        if not out.trial.resources.inline:  # no attempt of its own will free what it reserved
            self._free_left_group(out.trial.trial_id)
        return reason

    def _free_left_group(self, trial_id: str) -> None:
        """Remove the placement group a failed worker-group trial's dead process left
        (raysweep.left_groups), so the next trials can have its CPUs and GPUs at once."""
        from raysweep.left_groups import remove_left_group

        try:
            remove_left_group(*trial_dir_of(self.experiment_path, trial_id))
        except Exception as exc:  # noqa: BLE001 - best effort: Ray Train's cleaner removes it later
            log.warning("%s: could not free its placement group: %s", trial_id, exc)

    def _close(self, out: TrialOutcome) -> None:
        out.ended = time.time()
        m = out.metrics
        if out.run_id:
            self.writer.submit(faults.hold, "trial_ended", out.trial.trial_id)
            final = {k: m[k] for k in FINAL_KEYS if k in m}
            tags = {"raysweep.epochs_run": m.get("epoch", 0)}
            if out.status == TrialStatus.FAILED:
                tags[TAG_ERROR] = self._failed(out)
            self.writer.submit(self.writer.log_final, out.run_id, final, tags)
            if out.checkpoint_path:
                self.writer.submit(
                    self.writer.log_checkpoint,
                    out.run_id,
                    out.checkpoint_path,
                    out.trial.config.train.log_model,
                    out.trial.trial_id,
                )
            # The status tag last: `--resume` takes a run that has it as completely recorded.
            self.writer.submit(self.writer.log_final, out.run_id, {}, {TAG_STATUS: out.status})
            self.writer.submit(self.writer.end, out.run_id, out.status.mlflow_status)
        self.console.trial_done(out, self.outcomes)


class TuneProgressOff(TrialProgressCallback):
    """Tune's own per-trial progress printer, silenced: the recorder's console says it all.

    Given one, Tune adds none of its own; its own prints "Trial t003 completed. Last result: "
    whatever the verbosity for a trial that reported nothing (one that ended in an earlier
    run: `trial_dirs.ended_before`)."""

    def on_trial_result(self, *args: Any, **info: Any) -> None:
        pass

    def on_trial_error(self, *args: Any, **info: Any) -> None:
        pass

    def on_trial_complete(self, *args: Any, **info: Any) -> None:
        pass


def _ended_status(m: dict[str, Any]) -> TrialStatus:
    """How a trial that ended without an error ended, from its last result."""
    if m.get("diverged"):
        return TrialStatus.DIVERGED
    if m.get("stopped_early"):
        return TrialStatus.EARLY_STOPPED
    if m and not m.get("is_last_epoch"):
        return TrialStatus.STOPPED
    return TrialStatus.FINISHED


def error_text(trial: Any) -> str:
    """The error a failed Tune trial left (its error file), or Ray's message."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text()
    return str(getattr(trial, "error_msg", "") or "the trial failed (no error text from Ray)")
