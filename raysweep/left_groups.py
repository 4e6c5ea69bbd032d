"""The placement group a worker-group trial's dead process left behind, removed when the
trial starts again (or, with no retry left, when the driver records its failure).

A worker group's placement group belongs to the sweep's Ray job, not to the Ray Train
controller that made it. When the process driving a worker-group trial dies (the trial's
Tune actor, and the controller it owns with it), the group keeps its CPUs and GPUs reserved
until Ray Train's PlacementGroupCleaner, a detached actor asking Ray's state API whether the
controller still lives, removes it: seconds normally, but it asks again for as long as that
API does not answer (once, on a loaded 2-core machine, for over 8 minutes), and the trial's
retry, or the next trial needing those resources, waits meanwhile.

So the controller leaves each worker group's placement group id in the trial's Tune directory
(`GroupNoted`, a Ray Train callback), and the trial's next attempt removes the group named
there, if Ray still has it, before its trainer asks for a new one (`remove_left_group`); the
driver's recorder does the same for a trial that failed with no retry left.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.train.v2._internal.execution.callback import WorkerGroupCallback

GROUP_FILE = "raysweep-placement-group"  # in a trial's Tune directory: its worker group's id

log = logging.getLogger(__name__)


class GroupNoted(WorkerGroupCallback):
    """Leaves the id of each worker group's placement group in the trial's Tune directory
    (under `experiment_path`, `<storage>/<experiment dir>`, a local path or a URI). Runs in the
    trial's Ray Train controller."""

    def __init__(self, experiment_path: str, trial_id: str) -> None:
        self.experiment_path = experiment_path
        self.trial_id = trial_id

    def after_worker_group_start(self, worker_group: Any) -> None:
        from raysweep.trial_dirs import trial_dir_of

        group = worker_group.get_worker_group_state().placement_group_handle.placement_group
        try:
            fs, trial_dir = trial_dir_of(self.experiment_path, self.trial_id)
            with fs.open_output_stream(f"{trial_dir}/{GROUP_FILE}") as fh:
                fh.write(group.id.hex().encode())
        except Exception as exc:  # noqa: BLE001 - best effort: the training must not fail on it
            log.warning("could not note placement group %s: %s", group.id.hex(), exc)


def remove_left_group(fs: Any, trial_dir: str) -> str | None:
    """Remove the placement group an earlier attempt of the trial noted (`GroupNoted`) if Ray
    still has it; returns its id if it was removed.

    Only a dead attempt's group can still be there: an attempt that ended, however it ended,
    shut its worker group down (a group of an earlier Ray session is unknown to this one)."""
    import pyarrow.fs
    import ray
    from ray.util.placement_group import (
        PlacementGroup,
        placement_group_table,
        remove_placement_group,
    )

    if not ray.is_initialized():  # (Ray's calls below would start a Ray of their own)
        return None
    noted = f"{trial_dir}/{GROUP_FILE}"
    if fs.get_file_info(noted).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(noted) as fh:
        group_id = fh.read().decode().strip()
    fs.delete_file(noted)
    try:
        from ray import PlacementGroupID

        group = PlacementGroup(PlacementGroupID(bytes.fromhex(group_id)))
        if placement_group_table(group).get("state", "REMOVED") == "REMOVED":
            return None
        remove_placement_group(group)
    except Exception as exc:  # noqa: BLE001 - best effort: Ray Train's cleaner removes it later
        log.warning("could not remove placement group %s: %s", group_id, exc)
        return None
    trial_id = trial_dir.rstrip("/").rsplit("/", 1)[-1]
    log.warning("%s: removed placement group %s, left by its process that died", trial_id, group_id)
    return group_id
