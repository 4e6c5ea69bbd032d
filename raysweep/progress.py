"""What a person sees while a sweep runs: one line per event, counts and the best so far."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from raysweep.ranking import rank_value
from raysweep.records import TrialStatus
from raysweep.trial_errors import error_reason, lost_process

if TYPE_CHECKING:
    from raysweep.config import SweepSpec
    from raysweep.plan import Trial
    from raysweep.records import TrialOutcome
    from raysweep.resources import TrialResources


class Console:
    """Progress lines on stderr-free stdout, quiet when asked."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.t0 = time.time()
        self.metric = "test_acc"
        self.goal = "max"
        self.total = 0

    def say(self, text: str) -> None:
        """A line, always (summaries, hints)."""
        print(text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """A warning line."""
        print(f"raysweep: warning: {text}", file=sys.stderr, flush=True)

    def _event(self, text: str) -> None:
        if not self.quiet:
            elapsed = int(time.time() - self.t0)
            self.say(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text}")

    def sweep_started(
        self,
        spec: SweepSpec,
        trials: list[Trial],
        requests: dict[str, TrialResources],
        parallel: int,
        tracking_uri: str,
        experiment_id: str,
    ) -> None:
        """The header: what runs, how (each study's resources, by name), where it is recorded."""
        from raysweep.plan import is_adaptive
        from raysweep.resources import describe_requests

        self.t0 = time.time()
        self.metric, self.goal, self.total = spec.sweep.metric, spec.sweep.goal, len(trials)
        count = f"{len(trials)} trial{'s' if len(trials) != 1 else ''}"
        if is_adaptive(spec):
            self.total = max(s.samples for s in spec.sweep.studies)
            count = f"up to {self.total} trials chosen by tpe"
        distinct = set(requests.values())
        if len(distinct) == 1:
            req = distinct.pop()
            how = f"{req.describe()} each ({req.executor})"
        else:
            how = f"resources per study ({describe_requests(requests)})"
        self.say(
            f"raysweep: sweep '{spec.name}': {count}, {how}, "
            f"up to {parallel} at a time; scheduler {spec.sweep.scheduler.name}"
        )
        self.say(f"raysweep: tracking {tracking_uri} (experiment id {experiment_id})")

    def _counts(self, outcomes: dict[str, TrialOutcome]) -> str:
        done = sum(o.status.ended or o.status == TrialStatus.KILLED for o in outcomes.values())
        running = sum(o.status == TrialStatus.RUNNING for o in outcomes.values())
        best = self._best(outcomes)
        text = f"{done}/{self.total} done, {running} running"
        if best:
            text += f", best {self.metric} {best[0]:.4f} ({best[1]})"
        return text

    def _best(self, outcomes: dict[str, TrialOutcome]) -> tuple[float, str] | None:
        from raysweep.summary import best_outcome

        top = best_outcome(list(outcomes.values()), self.metric, self.goal)
        if top is None:
            return None
        return rank_value(top.metrics, self.metric) or 0.0, top.trial.trial_id

    def trial_started(self, out: TrialOutcome) -> None:
        """A trial began (or began again after a failure: said by `trial_retrying`)."""
        if out.failures:
            return
        self._event(f"{out.trial.trial_id} started   {out.trial.name}")

    def trial_retrying(self, out: TrialOutcome, error: str, failures: int, limit: int) -> None:
        """A trial failed and is being restarted (from its newest checkpoint, if any): one line,
        a lost process (Ray's paragraph on it is in the log file) in a few words."""
        reason = error_reason(error) or "unknown error"
        self._event(
            f"{out.trial.trial_id} retrying  failure {failures} of {limit} allowed: {reason[:160]}"
        )

    def trial_resumed(self, out: TrialOutcome, epoch: int) -> None:
        """A trial's training went on from a checkpoint (a worker retried, or --resume)."""
        self._event(f"{out.trial.trial_id} resumed   from its epoch-{epoch} checkpoint")

    def trial_result(self, out: TrialOutcome, outcomes: dict[str, TrialOutcome]) -> None:
        """An epoch ended."""
        m: dict[str, Any] = out.metrics
        epochs = out.trial.config.train.epochs
        self._event(
            f"{out.trial.trial_id} epoch {m.get('epoch')}/{epochs}  "
            f"test_acc {m.get('test_acc', float('nan')):.4f}  "
            f"train_loss {m.get('train_loss', float('nan')):.4f}  "
            f"{m.get('images_per_s', 0):.0f} img/s   | {self._counts(outcomes)}"
        )

    def trial_done(self, out: TrialOutcome, outcomes: dict[str, TrialOutcome]) -> None:
        """A trial ended, however it ended."""
        m = out.metrics
        if out.status == TrialStatus.FAILED:
            reason = error_reason(out.error or "") or "unknown error"
            if lost_process(out.error or ""):  # what happens next: nothing, it is not retried
                limit = out.trial.config.train.max_failures
                reason = f"{reason}; no retry left (train.max_failures {limit})"
            self._event(f"{out.trial.trial_id} FAILED    {reason[:200]}")
        else:
            best = m.get("best_test_acc")
            detail = f"best test_acc {best:.4f} at epoch {m.get('best_epoch')}" if best else ""
            self._event(f"{out.trial.trial_id} {out.status:<9} {detail}")
        self._event(self._counts(outcomes))
