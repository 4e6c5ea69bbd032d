"""A trial's Tune directory: who owns it, whether its training ended, and its checkpoints.

The directory (`<storage>/<experiment dir>/<trial id>`, local path or URI, read through
pyarrow.fs) is the truth a restarted trial and a resumed driver both go by: its owner file
(`OWNER_FILE`), its done or failed marker (`DONE_FILE`, `FAILED_FILE`) and its complete
checkpoints (each with an `EPOCH_FILE`). Ray is imported lazily.
"""

from __future__ import annotations

import json
from typing import Any

from raysweep.storage import STATE_FILE, filesystem

EPOCH_FILE = "epoch"  # beside state.pt: which epoch a checkpoint holds, without loading it


DONE_FILE = "raysweep-done.json"  # in a trial's Tune directory: its training ended, its last result
FAILED_FILE = "raysweep-failed.json"  # in a trial's Tune directory: the driver recorded it failed
ENDED_FILES = (DONE_FILE, FAILED_FILE)


def trial_dir_at(storage: str, experiment: str, trial_id: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path of a trial's Tune directory (local path or URI)."""
    return trial_dir_of(experiment_path(storage, experiment), trial_id)


def experiment_path(storage: str, experiment: str) -> str:
    """`<storage>/<experiment dir>`: where Tune keeps a sweep's trial directories."""
    return f"{storage.rstrip('/')}/{experiment}"


def trial_dir_of(experiment_path: str, trial_id: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path of a trial's Tune directory, from
    `<storage>/<experiment dir>` (what the driver's recorder knows)."""
    fs, root = filesystem(experiment_path)
    return fs, f"{root.rstrip('/')}/{trial_id}"


OWNER_FILE = "raysweep-trial.json"  # in a trial's Tune directory: whose checkpoints these are


def claim_trial_dir(fs: Any, trial_dir: str, trial: dict[str, Any], experiment: str) -> None:
    """Make the trial's directories its own: checkpoints left there by another trial of the
    same id (a point an adaptive search handed out before a crash and then forgot) are removed,
    so the trial never goes on from another point's weights."""
    import pyarrow.fs

    owner = f"{trial_dir}/{OWNER_FILE}"
    if fs.get_file_info(owner).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(owner) as fh:
            if json.loads(fh.read().decode()).get("fingerprint") == trial["fingerprint"]:
                return
        selector = pyarrow.fs.FileSelector(trial_dir, allow_not_found=True)
        for entry in fs.get_file_info(selector):
            if entry.base_name.startswith("checkpoint_") or entry.base_name in ENDED_FILES:
                if entry.type == pyarrow.fs.FileType.Directory:
                    fs.delete_dir(entry.path)
                else:
                    fs.delete_file(entry.path)
        train_dir = f"{trial_dir.rsplit('/', 2)[0]}/{experiment}-train/{trial['trial_id']}"
        if fs.get_file_info(train_dir).type == pyarrow.fs.FileType.Directory:
            fs.delete_dir(train_dir)  # a worker-group trial's checkpoints (Ray Train's run)
    fs.create_dir(trial_dir, recursive=True)
    with fs.open_output_stream(owner) as fh:
        fh.write(json.dumps({"fingerprint": trial["fingerprint"]}).encode())


def ended_before(fs: Any, trial_dir: str) -> bool:
    """True if the trial already ended, in an earlier run: it is not trained again.

    Tune's record that a trial ended is saved every ~10 s, and the driver records a trial in
    MLflow after its end: a driver crash in between, then `--resume`, starts the trial again.
    A trial whose training ended reports its last result (with its checkpoint's path) instead
    of training again, so the driver can finish recording it (or ignore it, if MLflow has it
    all); one the driver recorded as failed (`mark_failed`) ends at once, reporting nothing.
    """
    import pyarrow.fs
    from ray import tune

    if fs.get_file_info(f"{trial_dir}/{FAILED_FILE}").type == pyarrow.fs.FileType.File:
        return True
    done = f"{trial_dir}/{DONE_FILE}"
    if fs.get_file_info(done).type != pyarrow.fs.FileType.File:
        return False
    with fs.open_input_stream(done) as fh:
        tune.report(json.loads(fh.read().decode()))
    return True


def mark_done(fs: Any, trial_dir: str, metrics: dict[str, Any], checkpoint: str | None) -> None:
    """Keep a trial's last result and checkpoint path: its training has ended.

    Written under a temporary name, then renamed: a reader finds the whole record or none."""
    fs.create_dir(trial_dir, recursive=True)
    record = {**metrics, "checkpoint_path": checkpoint, "resumed_from": 0}
    draft = f"{trial_dir}/.{DONE_FILE}.tmp"
    with fs.open_output_stream(draft) as fh:
        fh.write(json.dumps(record, default=str).encode())
    fs.move(draft, f"{trial_dir}/{DONE_FILE}")


def mark_stopped(
    experiment_path: str, trial_id: str, metrics: dict[str, Any], checkpoint: str | None
) -> None:
    """Leave the done marker of a trial the scheduler stopped, written by the driver (its process
    is stopped before it writes one): a Tune restored from a state saved before the stop starts
    the trial again, and it then reports that end again (`ended_before`) instead of training on
    past it. `experiment_path` is `<storage>/<experiment dir>`."""
    mark_done(*trial_dir_of(experiment_path, trial_id), metrics, checkpoint)


def mark_failed(experiment_path: str, trial_id: str, reason: str) -> None:
    """Leave in the trial's Tune directory that the driver recorded it failed (`ended_before`).

    `experiment_path` is `<storage>/<experiment dir>` (a local path or a URI)."""
    fs, trial_dir = trial_dir_of(experiment_path, trial_id)
    fs.create_dir(trial_dir, recursive=True)
    with fs.open_output_stream(f"{trial_dir}/{FAILED_FILE}") as fh:
        fh.write(json.dumps({"error": reason}).encode())


def read_done(experiment_path: str, trial_id: str) -> dict[str, Any] | None:
    """A trial's done marker (its last result and checkpoint path), or None if it has none.

    `experiment_path` is `<storage>/<experiment dir>` (a local path or a URI)."""
    import pyarrow.fs

    fs, trial_dir = trial_dir_of(experiment_path, trial_id)
    done = f"{trial_dir}/{DONE_FILE}"
    if fs.get_file_info(done).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(done) as fh:
        return json.loads(fh.read().decode())


def newest_checkpoint(fs: Any, trial_dir: str) -> Any:
    """The checkpoint of the latest epoch in a trial's Tune directory, or None."""
    found = checkpoints_newest_first(fs, trial_dir)
    return found[0] if found else None


def checkpoints_newest_first(fs: Any, trial_dir: str) -> list[Any]:
    """The complete checkpoints in a trial's Tune directory, latest epoch first.

    Tune's own record of a trial's latest checkpoint is its experiment state, saved every
    10 s or so: after a driver crash it can be an epoch behind the checkpoints on disk (and
    Tune then reuses the names of those it does not know). The directory is the truth.
    """
    import pyarrow.fs
    from ray import tune

    found: list[tuple[int, str]] = []
    for entry in fs.get_file_info(pyarrow.fs.FileSelector(trial_dir, allow_not_found=True)):
        if entry.type != pyarrow.fs.FileType.Directory:
            continue
        if not entry.base_name.startswith("checkpoint_"):
            continue
        try:
            with fs.open_input_stream(f"{entry.path}/{EPOCH_FILE}") as fh:
                epoch = int(fh.read().decode())
        except (OSError, ValueError):
            continue  # not one of ours, or not fully written
        if fs.get_file_info(f"{entry.path}/{STATE_FILE}").type == pyarrow.fs.FileType.File:
            found.append((epoch, entry.path))
    return [tune.Checkpoint(path, filesystem=fs) for _, path in sorted(found, reverse=True)]
