"""Adaptive search (`mode: tpe`): the schema, what `plan` says, the searcher's trials, its
replay after a crash, and that TPE learns: on a 1-D learning-rate search (LeNet on digits, 16
trials one at a time) its second half beats its first half and random mode's 16.

The searcher is driven here the way Tune drives it one trial at a time (suggest, train,
complete), with real training in this process; tests/test_e2e_search.py runs it under Tune.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from raysweep.config import ConfigError, validate_spec
from raysweep.plan import Trial, base_trials, expand, is_adaptive
from raysweep.searchspace import decode, encode, optuna_space, startup_trials
from tests.conftest import run_cli

AXES = {
    "train.optimizer.lr": {"loguniform": [1.0e-5, 1.0e-1]},
    "train.optimizer.name": {"choice": ["sgd", "adam"]},
    "model.dropout": {"uniform": [0.0, 0.6]},
    "train.batch_size": [32, 64],
}


def _spec(tmp: Path | None = None, **sweep: Any) -> Any:
    dataset: dict[str, Any] = {"name": "digits", "image_size": 32, "limit_train": 512}
    if tmp is not None:
        dataset["cache_dir"] = str(tmp)
    return validate_spec(
        {
            "name": "lr1d",
            "dataset": dataset,
            "model": {"name": "lenet"},
            "train": {"epochs": 2, "batch_size": 64, "seed": 0, "log_model": False},
            "sweep": {"mode": "tpe", "samples": 16, **sweep},
        }
    )


def test_tpe_schema_errors_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="mode: tpe needs axes"):
        _spec(axes={})
    with pytest.raises(ConfigError, match="mode: tpe needs samples"):
        _spec(axes=AXES, samples=1)
    with pytest.raises(ConfigError, match="searches one space"):
        validate_spec(
            {
                "name": "x",
                "dataset": {"name": "digits"},
                "model": {"name": "lenet"},
                "sweep": {
                    "studies": [
                        {"mode": "tpe", "samples": 4, "axes": AXES},
                        {"mode": "grid", "axes": {"train.seed": [0, 1]}},
                    ]
                },
            }
        )
    with pytest.raises(ConfigError, match="distributions need mode: random or tpe"):
        _spec(mode="grid", axes={"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]}})


def test_a_tpe_sweep_plans_no_trial_but_its_base() -> None:
    spec = _spec(axes=AXES)
    assert is_adaptive(spec)
    assert expand(spec) == []
    (base,) = base_trials(spec, [])
    assert base.config.model.name == "lenet" and base.overrides == {}


def test_plan_and_validate_say_what_a_tpe_sweep_will_do(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "tpe.yaml"
    body = {
        "name": "tpe-plan",
        "dataset": {"name": "digits"},
        "model": {"name": "lenet"},
        "sweep": {"mode": "tpe", "samples": 40, "axes": AXES},
    }
    path.write_text(yaml.safe_dump(body))
    validated = run_cli(["validate", str(path)], tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert "up to 40 trials (tpe" in validated.stdout
    plan = run_cli(["plan", str(path)], tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "up to 40 trials chosen by tpe" in plan.stdout
    assert "the first 10 are random" in plan.stdout
    assert "train.optimizer.lr  loguniform 1e-5..0.1" in plan.stdout
    assert "train.batch_size  choice of 32, 64" in plan.stdout
    assert "1 worker x (1 CPU)" in plan.stdout


def test_points_go_to_optuna_and_back() -> None:
    space = optuna_space(AXES)
    assert space["train.optimizer.lr"].log and space["train.optimizer.lr"].high == 0.1
    assert list(space["train.batch_size"].choices) == [0, 1]
    params = {
        "train.optimizer.lr": 0.00123456,
        "train.optimizer.name": 1,
        "model.dropout": 0.25,
        "train.batch_size": 0,
    }
    point = decode(AXES, params)
    assert point == {
        "train.optimizer.lr": 0.001235,
        "train.optimizer.name": "adam",
        "model.dropout": 0.25,
        "train.batch_size": 32,
    }
    assert decode(AXES, encode(AXES, point)) == point
    assert startup_trials(16) == 4 and startup_trials(4) == 2 and startup_trials(400) == 10


def test_trials_are_numbered_in_creation_order_and_a_replayed_id_gets_its_point() -> None:
    from raysweep.search import TpeSearcher, set_replay

    spec = _spec(axes=AXES, samples=3)
    first = TpeSearcher(spec, "x")
    made = [Trial.from_json(first.suggest(f"tune-{i}")["trial"]) for i in range(3)]
    assert [t.trial_id for t in made] == ["t000", "t001", "t002"]
    assert first.suggest("tune-3") == "FINISHED"
    assert len({t.fingerprint for t in made}) == 3

    # A searcher restored from an older state (it had made only t000) hands out t001 again:
    # MLflow recorded its point, so the same point comes back under the same id.
    recorded = {k: v for k, v in made[1].overrides.items() if k in AXES}
    set_replay({"t001": recorded})
    try:
        again = TpeSearcher(spec, "x")
        again.suggest("tune-0")
        t001 = Trial.from_json(again.suggest("tune-1b")["trial"])
    finally:
        set_replay({})
    assert t001.trial_id == "t001" and t001.fingerprint == made[1].fingerprint


def test_tpe_learns_on_a_learning_rate_search(digits_cache: Path) -> None:
    """16 trials one at a time, seeds fixed: TPE's second half scores better on average than
    its first half, and better than random mode's 16 (the same space and seed)."""
    import torch

    from raysweep.data import load_dataset
    from raysweep.search import TpeSearcher
    from raysweep.train import WorkerEnv, train_trial

    torch.set_num_threads(1)
    axes = {"train.optimizer.lr": {"loguniform": [1.0e-5, 1.0e-1]}}
    spec = _spec(digits_cache, axes=axes)
    data = load_dataset(spec.dataset)

    def score(trial: Trial) -> dict[str, Any]:
        return train_trial(trial.config, WorkerEnv(), lambda m, s: None, data=data)

    searcher = TpeSearcher(spec, "lr1d")
    tpe = []
    for i in range(16):
        trial = Trial.from_json(searcher.suggest(f"tune-{i}")["trial"])
        last = score(trial)
        searcher.on_trial_complete(f"tune-{i}", last)
        tpe.append(last["test_acc"])
    random_spec = _spec(digits_cache, mode="random", axes=axes)
    random = [score(t)["test_acc"] for t in expand(random_spec)]
    assert len(random) == 16
    first, second = statistics.mean(tpe[:8]), statistics.mean(tpe[8:])
    assert second > first, (tpe, random)
    assert statistics.mean(tpe) > statistics.mean(random), (tpe, random)


def test_a_new_searcher_in_a_resumed_sweep_draws_no_recorded_point_again() -> None:
    """Tune's saved searcher lost (cut short, or never saved): a new one gets t000's and t001's
    points back from MLflow, and its next point is not t000's again, which the first run's
    seed would draw first."""
    from raysweep.search import TpeSearcher, set_replay

    spec = _spec(axes=AXES, samples=3)
    first = TpeSearcher(spec, "x")
    made = [Trial.from_json(first.suggest(f"tune-{i}")["trial"]) for i in range(2)]
    set_replay({t.trial_id: {k: v for k, v in t.overrides.items() if k in AXES} for t in made})
    try:
        again = TpeSearcher(spec, "x")
        replayed = [Trial.from_json(again.suggest(f"tune-{i}b")["trial"]) for i in range(3)]
    finally:
        set_replay({})
    assert [t.fingerprint for t in replayed[:2]] == [t.fingerprint for t in made]
    assert replayed[2].fingerprint not in {t.fingerprint for t in made}
