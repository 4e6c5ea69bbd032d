"""`--resume` and Tune's saved state cut short by a driver killed while Tune copied it into
storage (raysweep.tune_state): not restored, said, and left to a new Tuner. No Ray session."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from raysweep.storage import filesystem
from raysweep.sweep import restore_tuner
from raysweep.tune_state import unreadable_state

STATE = "experiment_state-2026-12-03_18-39-00.json"
SEARCH = "search_gen_state-2026-12-03_18-39-00.json"
SEARCHER = "searcher-state-2026-12-03_18-39-00.pkl"


def _saved(directory: Path, **cut: int) -> Path:
    """Tune's three saved state files, whole, or the ones named in `cut` cut to that length."""
    whole = {
        STATE: json.dumps({"runner_data": {}, "trial_data": []}).encode(),
        SEARCH: pickle.dumps({"counter": 3, "finished": False}),
        SEARCHER: pickle.dumps({"_ot_trials": {}}),
    }
    for name, data in whole.items():
        length = cut.get(name.split("-")[0], len(data))
        (directory / name).write_bytes(data[:length])
    return directory


def test_whole_saved_state_is_readable(tmp_path: Path) -> None:
    assert unreadable_state(*filesystem(str(_saved(tmp_path)))) is None


@pytest.mark.parametrize(
    ("cut", "named"),
    [
        ({"experiment_state": 0}, STATE),
        ({"experiment_state": 9}, STATE),
        ({"search_gen_state": 0}, SEARCH),
        ({"searcher": 5}, SEARCHER),
    ],
)
def test_a_file_cut_short_is_named(tmp_path: Path, cut: dict[str, int], named: str) -> None:
    assert unreadable_state(*filesystem(str(_saved(tmp_path, **cut)))) == named


def test_only_the_newest_of_each_counts(tmp_path: Path) -> None:
    """A later run's whole state wins over an earlier one that was cut short (Tune reads the
    newest name)."""
    _saved(tmp_path, experiment_state=0)
    newer = STATE.replace("18-39-00", "18-40-00")
    (tmp_path / newer).write_text(json.dumps({"runner_data": {}}))
    assert unreadable_state(*filesystem(str(tmp_path))) is None


def test_resume_does_not_restore_a_state_cut_short_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "tuner.pkl").write_bytes(pickle.dumps({}))  # what Tuner.can_restore looks for
    _saved(tmp_path, experiment_state=0, search_gen_state=0, searcher=0)
    said: list[str] = []
    assert restore_tuner(str(tmp_path), said.append) is None
    assert said == [
        f"Tune's saved state {STATE} is cut short (the driver died while Tune wrote it); "
        "the trials go on from their checkpoints instead"
    ]
