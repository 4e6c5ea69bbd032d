"""A resumed Tune's record of each trial's checkpoints, made to match what storage holds.

Tune saves its experiment state (which names each trial's latest checkpoint) every ~10 s, and
forces a save once a trial has checkpointed `num_to_keep` times since the last one; but it
deletes the checkpoint that fell out of `num_to_keep` as it registers the new one, before that
forced save is written. A driver killed in between leaves a saved state naming a checkpoint
that is gone: Tune's `Trainable.restore` raises ("Could not recover from checkpoint as it does
not exist on storage anymore") on each retry and the trial fails, though its newer checkpoints
are on disk (seen in CI, tests/test_e2e_search.py). Tune once fell back to the latest checkpoint
available (ray-project/ray#29099); Ray 2.60 does not.

`RestoredCheckpoints`, a Tune callback, looks once, before Tune starts a trial of the restored
sweep: a trial whose latest checkpoint is gone goes on from the newest complete one in its
directory (what the trial itself reads: `trial_dirs.checkpoints_newest_first`), and checkpoints
Tune lists that are gone leave its list (Tune would fail deleting them later).
"""

from __future__ import annotations

import logging
from typing import Any

from ray import tune

log = logging.getLogger(__name__)


class RestoredCheckpoints(tune.Callback):
    """Repair, once, the checkpoint record of every trial a restored Tune knows."""

    def __init__(self) -> None:
        self._checked = False

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return RestoredCheckpoints, ()  # unpickled by `--resume`: checks afresh

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._checked:
            return
        self._checked = True
        for trial in trials:
            now = repair(trial.run_metadata.checkpoint_manager)
            if now is not None:
                log.warning(
                    "%s: Tune's saved state names a checkpoint that is gone; it goes on from %s",
                    trial.config["trial"]["trial_id"],
                    now or "its start (no checkpoint left)",
                )


def repair(manager: Any) -> str | None:
    """Drop the checkpoints that are gone from Tune's `_CheckpointManager` of one trial; if its
    latest is gone, make the newest complete checkpoint in the same directory the latest.

    Returns None if nothing was gone, else the path the trial now goes on from ("" for none).
    """
    from ray.train._internal.session import _TrainingResult

    from raysweep.trial_dirs import checkpoints_newest_first

    latest = manager.latest_checkpoint_result
    if latest is None or latest.checkpoint is None:
        return None
    kept = [r for r in manager._checkpoint_results if _exists(r.checkpoint)]
    if _exists(latest.checkpoint):
        manager._checkpoint_results = kept
        return None
    gone = latest.checkpoint
    found = checkpoints_newest_first(gone.filesystem, gone.path.rsplit("/", 1)[0])
    now = None
    if found:
        same = [r for r in kept if r.checkpoint.path == found[0].path]
        # Tune's metrics of the checkpoint it had (its iteration count goes on from them).
        now = same[0] if same else _TrainingResult(found[0], dict(latest.metrics))
        kept = [*(r for r in kept if r is not now), now]
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = now
    return now.checkpoint.path if now else ""


def _exists(checkpoint: Any) -> bool:
    import pyarrow.fs

    return checkpoint.filesystem.get_file_info(checkpoint.path).type != pyarrow.fs.FileType.NotFound
