"""The checkpoint plumbing of the code that runs inside Ray (no Ray session needed)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from raysweep.storage import STATE_FILE
from raysweep.trainables import _reporter, _resume_state
from raysweep.trial_dirs import (
    DONE_FILE,
    EPOCH_FILE,
    checkpoints_newest_first,
    mark_done,
    newest_checkpoint,
    read_done,
    trial_dir_at,
)


class _Sink:
    """Stands in for `tune.report`: keeps what each report carried, as a copy on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports: list[tuple[dict, Path | None]] = []

    def __call__(self, metrics: dict, checkpoint=None) -> None:
        kept = None
        if checkpoint is not None:
            kept = self.root / f"checkpoint_{len(self.reports):06d}"
            kept.mkdir(parents=True)
            for f in Path(checkpoint.path).iterdir():
                (kept / f.name).write_bytes(f.read_bytes())
        self.reports.append((metrics, kept))


def test_reporter_writes_state_and_epoch_and_resume_reads_them(tmp_path: Path) -> None:
    from ray import tune

    sink = _Sink(tmp_path / "exp" / "t000")
    send = _reporter(sink, tune.Checkpoint)
    send({"epoch": 1}, None)  # a rank without state reports metrics only
    state = {"epoch": 2, "weights": torch.arange(3.0)}
    send({"epoch": 2}, state)
    (first, none), (second, kept) = sink.reports
    assert none is None and first == {"epoch": 1} and second == {"epoch": 2}
    assert kept is not None and (kept / EPOCH_FILE).read_text() == "2"
    loaded = _resume_state(tune.Checkpoint(str(kept)))
    assert loaded is not None and loaded["epoch"] == 2
    assert torch.equal(loaded["weights"], torch.arange(3.0))
    assert _resume_state(None) is None


def _checkpoint(trial_dir: Path, name: str, epoch: int | None, state: bool = True) -> None:
    path = trial_dir / name
    path.mkdir(parents=True)
    if epoch is not None:
        (path / EPOCH_FILE).write_text(str(epoch))
    if state:
        torch.save({"epoch": epoch}, path / STATE_FILE)


def test_newest_checkpoint_is_the_latest_epoch_not_the_latest_name(tmp_path: Path) -> None:
    trial_dir = tmp_path / "sweep-20261201-120000" / "t003"
    assert newest_checkpoint(*trial_dir_at(str(tmp_path), "sweep-20261201-120000", "t003")) is None
    # After a driver crash Tune can reuse a name it did not know: epoch 4 sits in _000001.
    _checkpoint(trial_dir, "checkpoint_000000", 1)
    _checkpoint(trial_dir, "checkpoint_000001", 4)
    _checkpoint(trial_dir, "checkpoint_000002", 3)
    _checkpoint(trial_dir, "checkpoint_000003", None)  # no epoch file: not complete
    _checkpoint(trial_dir, "checkpoint_000004", 9, state=False)  # no state: not complete
    (trial_dir / "result.json").write_text("{}")
    found = newest_checkpoint(*trial_dir_at(str(tmp_path), "sweep-20261201-120000", "t003"))
    assert found is not None and Path(found.path).name == "checkpoint_000001"
    assert _resume_state(found) == {"epoch": 4}
    assert newest_checkpoint(*trial_dir_at(str(tmp_path), "sweep-20261201-120000", "t004")) is None


def test_done_marker_keeps_the_last_result_per_trial(tmp_path: Path) -> None:
    fs, t000 = trial_dir_at(str(tmp_path), "sweep-20261201-120000", "t000")
    _, t001 = trial_dir_at(str(tmp_path), "sweep-20261201-120000", "t001")
    assert t000 == f"{tmp_path}/sweep-20261201-120000/t000"
    mark_done(fs, t000, {"epoch": 4, "test_acc": 0.9, "resumed_from": 3}, "/ckpt/checkpoint_3")
    record = json.loads((tmp_path / "sweep-20261201-120000" / "t000" / DONE_FILE).read_text())
    # The replayed result must not say "resumed" again; it carries the checkpoint's path.
    assert record == {
        "epoch": 4,
        "test_acc": 0.9,
        "resumed_from": 0,
        "checkpoint_path": "/ckpt/checkpoint_3",
    }
    assert not (tmp_path / "sweep-20261201-120000" / "t001").exists()
    assert t001.endswith("/t001")


def test_a_truncated_newest_checkpoint_is_passed_over_for_the_previous(tmp_path: Path) -> None:
    """A crash while state.pt was copied leaves it short: resume goes on from the one before."""
    import pytest

    trial_dir = tmp_path / "exp" / "t000"
    _checkpoint(trial_dir, "checkpoint_000000", 1)
    _checkpoint(trial_dir, "checkpoint_000001", 2)
    newest = trial_dir / "checkpoint_000001" / STATE_FILE
    newest.write_bytes(newest.read_bytes()[:20])
    found = checkpoints_newest_first(*trial_dir_at(str(tmp_path), "exp", "t000"))
    assert [Path(c.path).name for c in found] == ["checkpoint_000001", "checkpoint_000000"]
    assert _resume_state(*found) == {"epoch": 1}
    # Nothing readable at all: an error that says so, not a fresh start from epoch 0.
    (trial_dir / "checkpoint_000000" / STATE_FILE).write_bytes(b"")
    with pytest.raises(RuntimeError, match="no readable checkpoint"):
        _resume_state(*found)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_crafted_state_file_cannot_run_code(tmp_path: Path, monkeypatch) -> None:
    """state.pt is loaded with weights_only=True: a pickle that would run a command is refused."""
    import pickle

    import pytest

    from raysweep.artifacts import load_state

    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "checkpoint_000000"
    ckpt.mkdir()
    torch.save({"epoch": 1, "payload": _Exploit()}, ckpt / STATE_FILE)
    with pytest.raises(pickle.UnpicklingError):
        load_state(str(ckpt))
    with pytest.raises(RuntimeError, match="no readable checkpoint"):
        from ray import tune

        _resume_state(tune.Checkpoint(str(ckpt)))
    assert not (tmp_path / "pwned").exists()


def test_done_marker_is_written_whole_under_its_own_name(tmp_path: Path) -> None:
    fs, t000 = trial_dir_at(str(tmp_path), "exp", "t000")
    mark_done(fs, t000, {"epoch": 2}, None)
    assert sorted(p.name for p in (tmp_path / "exp" / "t000").iterdir()) == [DONE_FILE]
    assert read_done(f"{tmp_path}/exp", "t000") == {
        "epoch": 2,
        "checkpoint_path": None,
        "resumed_from": 0,
    }
    assert read_done(f"{tmp_path}/exp", "t001") is None
