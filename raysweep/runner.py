"""`raysweep run`: check everything, start Ray, run the Tuner, record and summarize the trials.

Nothing is started and no MLflow run is created until the sweep file, the datasets, the storage,
the Ray connection and the resource plan have all been checked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from raysweep.config import SweepSpec
from raysweep.plan import Trial
from raysweep.progress import Console
from raysweep.sweep import (
    RunOptions,
    TrialOutcome,
    build_tuner,
    experiment_dir_name,
    init_ray,
    plan_resources,
    storage_uri,
)
from raysweep.tracking import TAG_STATUS, TAG_TRIAL, MlflowWriter, resolve_tracking_uri


def check_datasets(trials: list[Trial]) -> None:
    """Load (and cache) every distinct dataset once, so a missing one fails before anything runs."""
    from raysweep.data import load_dataset

    seen: set[str] = set()
    for trial in trials:
        key = trial.config.dataset.model_dump_json()
        if key not in seen:
            seen.add(key)
            load_dataset(trial.config.dataset)


def _recorder_class() -> type:
    from ray import tune

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

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its callbacks with the experiment state; the writer's thread and the
            # console cannot travel, and a resumed sweep makes a new recorder anyway.
            return {}

        def _outcome(self, trial: Any) -> TrialOutcome:
            return self.outcomes[trial.config["trial"]["trial_id"]]

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            out = self._outcome(trial)
            out.status, out.started = "running", time.time()
            t = out.trial
            tags = {
                TAG_TRIAL: t.trial_id,
                "raysweep.studies": ",".join(t.studies),
                "raysweep.fingerprint": t.fingerprint,
                TAG_STATUS: "running",
            }
            if out.run_id is None:
                config = t.config.model_dump(mode="json")
                out.run_id = self.writer.submit(
                    self.writer.create_child, self.parent_id, t.name, tags, config
                ).result()
            self.console.trial_started(out)

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            out = self._outcome(trial)
            first = not out.metrics
            out.metrics = dict(result)
            out.checkpoint_path = result.get("checkpoint_path") or out.checkpoint_path
            if out.run_id:
                self.writer.submit(self.writer.log_epoch, out.run_id, out.metrics)
                if first:
                    tags = {
                        f"raysweep.{k}": result.get(k, "") for k in ("node_id", "host", "device")
                    }
                    self.writer.submit(self.writer.log_final, out.run_id, {}, tags)
            self.console.trial_result(out, self.outcomes)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            out = self._outcome(trial)
            m = out.metrics
            if m.get("diverged"):
                out.status = "diverged"
            elif m.get("stopped_early"):
                out.status = "early_stopped"
            elif m and not m.get("done"):
                out.status = "stopped"
            else:
                out.status = "finished"
            self._close(out, "FINISHED")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            out = self._outcome(trial)
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
                tags = {TAG_STATUS: out.status, "raysweep.epochs_run": m.get("epoch", 0)}
                self.writer.submit(self.writer.log_final, out.run_id, final, tags)
                if out.checkpoint_path:
                    self.writer.submit(
                        self.writer.log_checkpoint,
                        out.run_id,
                        out.checkpoint_path,
                        out.trial.config.train.log_model,
                    )
                self.writer.submit(self.writer.end, out.run_id, mlflow_status)
            self.console.trial_done(out, self.outcomes)

    return SweepRecorder


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text()
    return str(getattr(trial, "error_msg", "") or "the trial failed (no error text from Ray)")


def run_sweep(
    spec: SweepSpec,
    trials: list[Trial],
    sweep_text: str,
    options: RunOptions,
    console: Console,
) -> dict[str, TrialOutcome]:
    """Run every trial; returns their outcomes (also recorded in MLflow)."""
    check_datasets(trials)
    storage = storage_uri(options.storage)
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    cluster = init_ray(options.address, options.debug)
    req, parallel = plan_resources(spec, cluster, options.max_concurrent)

    writer = MlflowWriter(tracking_uri, spec.name)
    experiment_dir = experiment_dir_name(spec)
    parent_id = writer.start_parent(
        f"{spec.name} sweep",
        tags={"raysweep.role": "sweep", "raysweep.experiment_dir": experiment_dir},
        params={
            "trials": len(trials),
            "modes": ",".join(sorted({s.mode for s in spec.sweep.studies})),
            "scheduler": spec.sweep.scheduler.name,
            "metric": spec.sweep.metric,
            "goal": spec.sweep.goal,
            "resources": req.describe(),
            "storage": storage,
        },
    )
    writer.submit(writer.log_text, parent_id, sweep_text, "sweep.yaml")
    writer.submit(
        writer.log_text, parent_id, json.dumps([t.to_json() for t in trials], indent=1), "plan.json"
    )
    outcomes = {t.trial_id: TrialOutcome(t) for t in trials}
    console.sweep_started(spec, trials, req, parallel, tracking_uri, writer.experiment_id)
    recorder = _recorder_class()(writer, parent_id, outcomes, console)
    tuner = build_tuner(spec, trials, req, parallel, storage, experiment_dir, [recorder], cluster)
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for out in outcomes.values():
            if out.status in ("pending", "running"):
                out.status = "killed"
                if out.run_id:
                    writer.submit(writer.log_final, out.run_id, {}, {TAG_STATUS: "killed"})
                    writer.submit(writer.end, out.run_id, "KILLED")
        _finish_parent(writer, parent_id, spec, outcomes, interrupted)
        errors = writer.flush()
        for err in errors:
            console.warn(f"MLflow: {err}")
    return outcomes


def _finish_parent(
    writer: MlflowWriter,
    parent_id: str,
    spec: SweepSpec,
    outcomes: dict[str, TrialOutcome],
    interrupted: bool,
) -> None:
    from raysweep.summary import best_outcome, summary_rows, write_summary

    rows = summary_rows(list(outcomes.values()), spec.sweep.metric, spec.sweep.goal)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_summary(rows, Path(tmp))
        writer.submit(writer.log_dir, parent_id, tmp, None).result()
    best = best_outcome(list(outcomes.values()), spec.sweep.metric, spec.sweep.goal)
    final: dict[str, float] = {}
    tags = {"raysweep.status": "interrupted" if interrupted else "done"}
    if best is not None and best.run_id:
        tags["raysweep.best_run_id"] = best.run_id
        tags["raysweep.best_trial"] = best.trial.trial_id
        final[f"best_{spec.sweep.metric}"] = float(
            best.metrics.get(f"best_{spec.sweep.metric}", best.metrics.get(spec.sweep.metric, 0.0))
        )
        writer.submit(writer.log_final, best.run_id, {}, {"raysweep.best": "true"})
    writer.submit(writer.log_final, parent_id, final, tags)
    failed = any(o.status in ("failed", "killed") for o in outcomes.values())
    status = "KILLED" if interrupted else ("FAILED" if failed else "FINISHED")
    writer.submit(writer.end, parent_id, status)
