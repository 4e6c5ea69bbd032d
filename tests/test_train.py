"""The per-worker loop without Ray: determinism, exact resume, divergence, early stopping."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from raysweep.config import TrialConfig
from raysweep.data import load_dataset
from raysweep.train import WorkerEnv, train_trial


def _config(cache: Path, **train) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {
                "name": "digits",
                "image_size": 32,
                "cache_dir": str(cache),
                "limit_train": 512,
                "limit_test": 256,
            },
            "model": {"name": "lenet"},
            "train": {
                "epochs": 3,
                "batch_size": 64,
                "seed": 1,
                "optimizer": {"name": "adam", "lr": 3e-3},
                **train,
            },
        }
    )


def _run(config: TrialConfig, resume=None):
    reports = []
    torch.set_num_threads(1)
    # The real reporter serializes the state at once; a deep copy does the same here.
    train_trial(
        config, WorkerEnv(), lambda m, s: reports.append((m, copy.deepcopy(s))), resume=resume
    )
    return reports


def _numbers(metrics: dict) -> dict:
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
    return {k: metrics[k] for k in keys}


def test_reports_every_epoch_with_checkpoint_state(digits_cache: Path) -> None:
    reports = _run(_config(digits_cache))
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert [m["is_last_epoch"] for m, _ in reports] == [0, 0, 1]
    last, state = reports[-1]
    assert state["epoch"] == 3 and set(state) >= {"model", "optimizer", "schedule", "meta"}
    assert last["gap"] == pytest.approx(last["train_acc"] - last["test_acc"])
    assert last["best_test_acc"] == max(m["test_acc"] for m, _ in reports)
    assert last["test_acc"] > 0.5
    steps_per_epoch = 512 // 64
    assert len(state["step_log"]) == 3 * steps_per_epoch
    assert sum(sum(row) for row in state["confusion"]) == 256


def test_same_config_and_seed_give_the_same_metrics(digits_cache: Path) -> None:
    a = [_numbers(m) for m, _ in _run(_config(digits_cache))]
    b = [_numbers(m) for m, _ in _run(_config(digits_cache))]
    assert a == b
    c = [_numbers(m) for m, _ in _run(_config(digits_cache, seed=2))]
    assert c != a


def test_resume_from_a_checkpoint_continues_exactly(digits_cache: Path) -> None:
    config = _config(digits_cache, augment=["crop", "flip"], lr_schedule={"name": "cosine"})
    straight = _run(config)
    _, state_after_2 = straight[1]
    resumed = _run(config, resume=state_after_2)
    assert [m["epoch"] for m, _ in resumed] == [3]
    assert _numbers(resumed[0][0]) == _numbers(straight[2][0])
    assert len(resumed[0][1]["step_log"]) == len(straight[2][1]["step_log"])


def test_resume_reports_the_epochs_its_checkpoint_holds(digits_cache: Path) -> None:
    """The first report after a resume carries the checkpoint's epochs (the driver logs any
    whose results were lost); later ones do not."""
    config = _config(digits_cache, epochs=4)
    straight = _run(config)
    resumed = _run(config, resume=straight[1][1])
    first, later = resumed[0][0], resumed[1][0]
    assert (first["epoch"], first["resumed_from"]) == (3, 2)
    assert [h["test_acc"] for h in first["epochs_before"]] == [
        m["test_acc"] for m, _ in straight[:2]
    ]
    assert "epochs_before" not in later and "epochs_before" not in resumed[1][1]["last"]


def test_a_trial_resumed_after_its_end_reports_its_last_result_again(digits_cache: Path) -> None:
    """Killed after its last checkpoint, before its end was recorded: no epoch is trained
    again; its last result is reported again (with the epochs before it)."""
    config = _config(digits_cache, epochs=5, optimizer={"name": "sgd", "lr": 1e6})
    straight = _run(config)  # diverges, so it ends before its last epoch
    last, state = straight[-1]
    again = _run(config, resume=state)
    assert len(again) == 1 and again[0][1] is None
    reported = again[0][0]
    assert reported["epoch"] == last["epoch"] and reported["diverged"] == 1
    assert reported["is_last_epoch"] == 1 and reported["resumed_from"] == last["epoch"]
    assert len(reported["epochs_before"]) == last["epoch"]


def test_a_diverging_trial_stops_at_once(digits_cache: Path) -> None:
    config = _config(digits_cache, epochs=5, optimizer={"name": "sgd", "lr": 1e6})
    reports = _run(config)
    last = reports[-1][0]
    assert last["diverged"] == 1 and last["is_last_epoch"] == 1
    assert len(reports) < 5
    assert not math.isfinite(last["train_loss"]) or not math.isfinite(last["test_loss"])


def test_early_stopping_is_recorded(digits_cache: Path) -> None:
    config = _config(
        digits_cache,
        epochs=8,
        optimizer={"name": "sgd", "lr": 1e-9},
        early_stop={"patience": 2, "metric": "test_acc"},
    )
    reports = _run(config)
    last = reports[-1][0]
    assert last["stopped_early"] == 1 and last["is_last_epoch"] == 1
    assert len(reports) < 8
    assert last["best_epoch"] <= len(reports) - 2


def test_dataset_is_cached_once(digits_cache: Path) -> None:
    spec = _config(digits_cache).dataset
    first = load_dataset(spec)
    second = load_dataset(spec)
    assert torch.equal(first.x_train, second.x_train)


def test_best_values_duration_and_size_are_reported(digits_cache: Path) -> None:
    reports = _run(_config(digits_cache))
    history = [m for m, _ in reports]
    last = history[-1]
    for key, pick in (("train_loss", min), ("train_acc", max), ("test_loss", min)):
        values = [m[key] for m in history]
        assert last[f"best_{key}"] == pick(values)
        assert last[f"best_{key}_epoch"] == values.index(pick(values)) + 1
    assert last["train_time_s"] == pytest.approx(sum(m["epoch_time_s"] for m in history))
    assert last["num_params"] == 61_706  # LeNet-5 on 1x32x32 digits, 10 classes


def test_clean_train_evaluation_makes_gap_the_generalisation_gap(digits_cache: Path) -> None:
    """`train.eval_train: N` evaluates N train images in eval mode after each epoch; `gap` is
    then that accuracy minus test_acc. It draws from its own generator: training is unchanged."""
    plain = _run(_config(digits_cache))
    clean = _run(_config(digits_cache, eval_train=200))
    for (a, _), (b, _) in zip(plain, clean, strict=True):
        assert _numbers(a) == _numbers(b)
        assert "train_eval_acc" not in a
        assert 0.0 <= b["train_eval_acc"] <= 1.0 and b["train_eval_loss"] > 0
        assert b["gap"] == pytest.approx(b["train_eval_acc"] - b["test_acc"])


def test_checkpoint_every_keeps_metrics_and_resume_redoes_from_the_newest(
    digits_cache: Path,
) -> None:
    every = _run(_config(digits_cache, epochs=4, checkpoint_every=3))
    assert [s["epoch"] if s else None for _, s in every] == [None, None, 3, 4]
    plain = _run(_config(digits_cache, epochs=4))
    assert [_numbers(m) for m, _ in every] == [_numbers(m) for m, _ in plain]
    # a failure after epoch 3's checkpoint: training goes on from it, the same numbers
    resumed = _run(_config(digits_cache, epochs=4, checkpoint_every=3), resume=every[2][1])
    assert [m["epoch"] for m, _ in resumed] == [4]
    assert _numbers(resumed[0][0]) == _numbers(plain[3][0])
    assert len(every[3][1]["step_log"]) == 4 * (512 // 64)  # step losses of every epoch kept
