"""A restored Tune's checkpoint record made to match storage (raysweep.restored_checkpoints),
on Tune's own checkpoint manager and real checkpoint directories (no Ray session needed).
The whole path, a driver killed and resumed with Tune's record stale, is in
tests/test_e2e_recovery.py."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

from raysweep.restored_checkpoints import RestoredCheckpoints, repair
from raysweep.storage import STATE_FILE
from raysweep.trial_dirs import EPOCH_FILE


def _result(trial_dir: Path, index: int, epoch: int):
    """A checkpoint as an inline trial writes it, and Tune's record of it."""
    from ray import tune
    from ray.train._internal.session import _TrainingResult

    path = trial_dir / f"checkpoint_{index:06d}"
    path.mkdir(parents=True)
    torch.save({"epoch": epoch}, path / STATE_FILE)
    (path / EPOCH_FILE).write_text(str(epoch))
    return _TrainingResult(
        tune.Checkpoint(str(path)), {"epoch": epoch, "training_iteration": epoch}
    )


def _manager():
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune import CheckpointConfig

    return _CheckpointManager(CheckpointConfig(num_to_keep=2))


def _names(manager) -> list[str]:
    return [Path(r.checkpoint.path).name for r in manager._checkpoint_results]


def test_a_stale_record_goes_on_from_the_newest_checkpoint_on_disk(tmp_path: Path) -> None:
    """Tune's record saved after epoch 1; epochs 2 and 3 checkpointed, and Tune itself deleted
    epoch 1's (num_to_keep 2) before it saved again: the record names a checkpoint gone."""
    trial_dir = tmp_path / "sweep-20261203-120000" / "t001"
    live = _manager()
    live.register_checkpoint(_result(trial_dir, 0, 1))
    saved = copy.deepcopy(live)  # what Tune's experiment state holds
    live.register_checkpoint(_result(trial_dir, 1, 2))
    live.register_checkpoint(_result(trial_dir, 2, 3))
    assert not (trial_dir / "checkpoint_000000").exists()  # Tune deleted it

    now = repair(saved)
    assert now is not None and Path(now).name == "checkpoint_000002"
    latest = saved.latest_checkpoint_result
    assert Path(latest.checkpoint.path).name == "checkpoint_000002"
    assert _names(saved) == ["checkpoint_000002"]  # the gone one left the list
    # Tune's metrics of the checkpoint it had: its iteration count goes on from there.
    assert latest.metrics["training_iteration"] == 1
    # Tune goes on registering (and deleting beyond num_to_keep) without meeting a gone path.
    saved.register_checkpoint(_result(tmp_path / "next", 3, 4))
    saved.register_checkpoint(_result(tmp_path / "next", 4, 5))
    assert not (trial_dir / "checkpoint_000002").exists()
    assert _names(saved) == ["checkpoint_000003", "checkpoint_000004"]


def test_a_record_that_holds_is_left_as_it_is_but_gone_entries_leave(tmp_path: Path) -> None:
    trial_dir = tmp_path / "exp" / "t000"
    manager = _manager()
    assert repair(manager) is None  # a trial that never checkpointed
    manager.register_checkpoint(_result(trial_dir, 0, 1))
    manager.register_checkpoint(_result(trial_dir, 1, 2))
    before = manager.latest_checkpoint_result
    assert repair(manager) is None
    assert manager.latest_checkpoint_result is before
    assert _names(manager) == ["checkpoint_000000", "checkpoint_000001"]
    # An older checkpoint gone (by hand, or by a crash mid-delete): only the list changes.
    for f in (trial_dir / "checkpoint_000000").iterdir():
        f.unlink()
    (trial_dir / "checkpoint_000000").rmdir()
    assert repair(manager) is None
    assert manager.latest_checkpoint_result is before
    assert _names(manager) == ["checkpoint_000001"]


def test_no_checkpoint_left_starts_the_trial_from_its_beginning(tmp_path: Path) -> None:
    trial_dir = tmp_path / "exp" / "t000"
    manager = _manager()
    manager.register_checkpoint(_result(trial_dir, 0, 1))
    (trial_dir / "checkpoint_000000" / EPOCH_FILE).unlink()  # incomplete: not one to go on from
    (trial_dir / "checkpoint_000000").rename(trial_dir / "elsewhere")
    assert repair(manager) == ""
    assert manager.latest_checkpoint_result is None and _names(manager) == []


class _Trial:
    """What the callback reads of a Tune trial."""

    def __init__(self, trial_id: str, manager) -> None:
        self.config = {"trial": {"trial_id": trial_id}}
        self.run_metadata = type("Meta", (), {"checkpoint_manager": manager})()


def test_the_callback_repairs_once_and_is_unpickled_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trial_dir = tmp_path / "exp" / "t000"
    manager = _manager()
    manager.register_checkpoint(_result(trial_dir, 0, 1))
    _result(trial_dir, 5, 2)  # on disk, unknown to Tune
    for f in (trial_dir / "checkpoint_000000").iterdir():
        f.unlink()
    (trial_dir / "checkpoint_000000").rmdir()
    callback = RestoredCheckpoints()
    trials = [_Trial("t000", manager), _Trial("t001", _manager())]
    callback.on_step_begin(0, trials)
    assert Path(manager.latest_checkpoint_result.checkpoint.path).name == "checkpoint_000005"
    assert "t000: Tune's saved state names a checkpoint that is gone" in caplog.text
    assert "checkpoint_000005" in caplog.text
    # Later steps do nothing (the record is live from here on), however it looks.
    manager._latest_checkpoint_result = None
    callback.on_step_begin(1, trials)
    assert manager.latest_checkpoint_result is None
    # Pickled with the Tuner before it ran, unpickled by `--resume`: it checks again.
    again = pickle.loads(pickle.dumps(callback))
    assert again._checked is False
