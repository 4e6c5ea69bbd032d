"""Adaptive search (`mode: tpe`): Optuna's TPE through Ray Tune's `OptunaSearch`.

Each point is chosen when Tune asks for the next trial, from the results so far; the searcher
turns it into a raysweep trial (`t000`, `t001`, ... in creation order) with a validated config,
exactly like a planned one, so the trial driver, MLflow and the reports cannot tell the two
apart. Tune saves the searcher with its experiment state, so `--resume` goes on with the same
history. A point handed out after that save and recorded in MLflow before a crash is handed out
again under the same trial id (`replay`), so no recorded point is lost or repeated.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from raysweep.config import SweepSpec
from raysweep.plan import Trial, point_trial
from raysweep.searchspace import decode, encode, optuna_space, startup_trials, tpe_study

# Trial id -> the point (axis path -> value) MLflow recorded for it in an earlier run of this
# sweep; set by `--resume` before Tune restores the searcher (which is unpickled, so it cannot
# be handed the points itself).
_REPLAY: dict[str, dict[str, Any]] = {}


def set_replay(points: dict[str, dict[str, Any]]) -> None:
    """The points earlier runs of this sweep gave each trial id (see the module docstring)."""
    _REPLAY.clear()
    _REPLAY.update(points)


class TpeSearcher(OptunaSearch):
    """Ray Tune's OptunaSearch (seeded TPE) that hands Tune whole raysweep trials."""

    def __init__(self, spec: SweepSpec, source: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines are not ours
        study = tpe_study(spec)
        sampler = optuna.samplers.TPESampler(
            # A new searcher in a resumed sweep (Tune's saved one lost or never saved) is given
            # the recorded points again, and with the first run's seed would then draw the
            # first of them again as its next random point: another seed, another draw.
            seed=spec.train.seed + len(_REPLAY),
            n_startup_trials=startup_trials(study.samples),
            # With trials running side by side, points already handed out count as
            # (pessimistic) results, so concurrent trials do not all get the same point.
            constant_liar=True,
        )
        super().__init__(
            space=optuna_space(study.axes),
            metric=spec.sweep.metric,
            mode=spec.sweep.goal,
            sampler=sampler,
        )
        self.spec = spec
        self.source = source
        self.samples = study.samples
        self.axes = study.axes
        self.study_index = spec.sweep.studies.index(study)
        self.made = 0  # trials handed out, so the next one is t<made>

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next trial as Tune's config (`{"trial": Trial.to_json()}`), or FINISHED."""
        if self.made >= self.samples:
            return Searcher.FINISHED
        ours = f"t{self.made:03d}"
        if ours in _REPLAY:
            self._ot_study.enqueue_trial(encode(self.axes, _REPLAY[ours]))
        params = super().suggest(trial_id)
        if params is None:
            return None
        trial = self.trial_at(ours, decode(self.axes, params))
        self.made += 1
        return {"trial": trial.to_json()}

    def trial_at(self, trial_id: str, point: dict[str, Any]) -> Trial:
        """The raysweep trial at `point`."""
        return point_trial(self.spec, self.study_index, trial_id, point, self.source)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate results (Optuna keeps them; no pruning: the sweep's scheduler stops)."""
        if trial_id in self._ot_trials and _finite(result.get(self.metric)):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell Optuna the trial's last value; a failed or diverged trial is a failed point."""
        if trial_id not in self._ot_trials:
            return  # handed out before a crash Tune's saved state does not know of
        if result is None or not _finite(result.get(self.metric)) or result.get("diverged"):
            super().on_trial_complete(trial_id, None, error=True)
        else:
            super().on_trial_complete(trial_id, result, error=error)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
