"""A resumed sweep's ASHA rungs, refilled from what an earlier run of it recorded.

Tune does not save its scheduler with its experiment state: a restored (or new) Tuner's ASHA
starts with empty rungs, so after `--resume` every trial would be judged only against results
reported since, the trials that ended before no longer counting (fewer trials stopped), and a
trial resumed past a rung judged there again on its next result. raysweep knows each trial's
metric per epoch (MLflow, read by `raysweep.resume`): as Tune adds a trial (restored ones
included), its values at the rungs it passed go back into its bracket, as ASHA recorded them.

This reads Ray's private ASHA fields (`_trial_info`, `_rungs`, `_metric_op`); where they are not
there (another Ray), nothing is refilled and ASHA goes on as Tune left it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)


def refill(scheduler: Any, tune_trial_id: str, history: dict[int, float]) -> list[int]:
    """Put a trial's metric at each ASHA rung it passed (`history`: epoch -> value) into the
    rungs of its bracket, unless ASHA has it there already. Returns the epochs refilled.

    A rung at milestone m holds what the trial reported at its first epoch >= m (ASHA's
    `time_attr` is the epoch), times +1 for `mode: max`, -1 for `min`. Call after the
    scheduler's own `on_trial_add` (it picks the bracket)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler

    if not history or not isinstance(scheduler, AsyncHyperBandScheduler):
        return []
    bracket = getattr(scheduler, "_trial_info", {}).get(tune_trial_id)
    sign = getattr(scheduler, "_metric_op", None)
    if bracket is None or sign is None:
        return []
    refilled = []
    for milestone, recorded in getattr(bracket, "_rungs", []):
        epoch = math.ceil(milestone)
        if epoch in history and tune_trial_id not in recorded:
            recorded[tune_trial_id] = sign * history[epoch]
            refilled.append(epoch)
    return refilled


def refill_from_record(scheduler: Any, tune_trial_id: str, trial_id: str) -> None:
    """`refill` with what the running sweep's record holds of planned trial `trial_id`; said
    in the run's log of other libraries' messages."""
    refilled = refill(scheduler, tune_trial_id, recorded_history(trial_id))
    if refilled:
        log.info("%s: ASHA's rungs at epochs %s refilled from MLflow", trial_id, sorted(refilled))


def recorded_history(trial_id: str) -> dict[int, float]:
    """The sweep metric per epoch that an earlier run recorded for planned trial `trial_id`
    (empty for a trial not run before, or where no sweep runs in this process)."""
    from raysweep.recorder import current_recorder

    try:
        out = current_recorder().outcomes.get(trial_id)
    except IndexError:  # no sweep in this process: a scheduler used on its own
        return {}
    return out.metric_history if out is not None else {}
