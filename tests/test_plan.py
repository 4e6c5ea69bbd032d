"""Tests for the expansion of a sweep's studies and axes into trials (pure: no torch, no ray)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from raysweep.config import SweepSpec, load_spec
from raysweep.errors import ConfigError
from raysweep.plan import Trial, expand, fingerprint, format_value, swept_params
from raysweep.planview import plan_report

HEAD = """\
name: t
dataset: {name: synthetic}
model: {name: lenet}
train:
  epochs: 3
  batch_size: 128
  optimizer: {name: adam, lr: 1.0e-3, weight_decay: 0.01}
"""


def load(tmp_path: Path, sweep: str, head: str = HEAD) -> tuple[SweepSpec, list[Trial], Path]:
    path = tmp_path / "sweep.yaml"
    path.write_text(head + sweep)
    spec, _ = load_spec(path)
    return spec, expand(spec, str(path)), path


def dump(trial: Trial) -> dict[str, Any]:
    return trial.config.model_dump(mode="json")


def base_config(spec: SweepSpec) -> dict[str, Any]:
    """The base trial as a validated, dumped config."""
    from raysweep.config import TrialConfig

    return TrialConfig.model_validate(spec.base_dict()).model_dump(mode="json")


def changed(config: dict[str, Any], base: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted paths where `config` differs from `base`."""
    out: dict[str, Any] = {}
    for key in sorted(set(config) | set(base)):
        a, b = config.get(key), base.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(changed(a, b, path + "."))
        elif a != b:
            out[path] = a
    return out


# ---- grid -------------------------------------------------------------------------------------


def test_grid_is_the_product_in_stable_order(tmp_path: Path) -> None:
    spec, trials, _ = load(
        tmp_path,
        """\
sweep:
  mode: grid
  axes:
    model.name: [lenet, vgg]
    train.optimizer.lr: [0.1, 0.01]
    train.batch_size: [32, 64, 128]
""",
    )
    assert len(trials) == 12
    combos = list(itertools.product(["lenet", "vgg"], [0.1, 0.01], [32, 64, 128]))
    base = base_config(spec)
    for i, (trial, (model, lr, bs)) in enumerate(zip(trials, combos, strict=True)):
        assert trial.trial_id == f"t{i:03d}"
        assert trial.studies == ("main",)
        assert trial.overrides == {
            "model.name": model,
            "train.optimizer.lr": lr,
            "train.batch_size": bs,
        }
        c = trial.config
        assert (c.model.name, c.train.optimizer.lr, c.train.batch_size) == (model, lr, bs)
        diff = changed(dump(trial), base)
        assert set(diff) <= {"model.name", "train.optimizer.lr", "train.batch_size"}
        assert c.train.optimizer.weight_decay == 0.01  # everything else stays at base
        assert c.train.epochs == 3
    assert swept_params(trials) == ["model.name", "train.optimizer.lr", "train.batch_size"]


def test_no_axes_is_one_base_trial(tmp_path: Path) -> None:
    spec, trials, _ = load(tmp_path, "")
    assert len(trials) == 1
    (trial,) = trials
    assert trial.trial_id == "t000"
    assert trial.overrides == {}
    assert trial.name == "lenet base"
    assert dump(trial) == base_config(spec)
    assert swept_params(trials) == []


def test_duplicate_points_run_once(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {axes: {model.name: [lenet, vgg, lenet]}}\n")
    assert [t.config.model.name for t in trials] == ["lenet", "vgg"]
    assert [t.trial_id for t in trials] == ["t000", "t001"]


def test_expansion_is_stable(tmp_path: Path) -> None:
    sweep = "sweep: {axes: {model.name: [lenet, vgg], train.optimizer.lr: [0.1, 0.01]}}\n"
    spec, first, _ = load(tmp_path, sweep)
    second = expand(spec)
    assert [t.to_json() for t in first] == [t.to_json() for t in second]
    fps = [t.fingerprint for t in first]
    assert len(set(fps)) == len(fps)
    assert all(len(fp) == 10 for fp in fps)
    assert first[0].fingerprint == fingerprint(dump(first[0]))


# ---- ofat -------------------------------------------------------------------------------------


def test_ofat_is_base_once_plus_one_trial_per_other_value(tmp_path: Path) -> None:
    spec, trials, _ = load(
        tmp_path,
        """\
sweep:
  mode: ofat
  axes:
    train.optimizer.lr: [0.1, 0.001, 0.0001]   # 0.001 is the base
    train.batch_size: [64, 128, 256]           # 128 is the base
    model.name: [lenet, vgg]                   # lenet is the base
""",
    )
    base = base_config(spec)
    assert len(trials) == 1 + 2 + 2 + 1
    assert trials[0].overrides == {}
    assert dump(trials[0]) == base
    expected = [
        {"train.optimizer.lr": 0.1},
        {"train.optimizer.lr": 0.0001},
        {"train.batch_size": 64},
        {"train.batch_size": 256},
        {"model.name": "vgg"},
    ]
    assert [t.overrides for t in trials[1:]] == expected
    for trial, want in zip(trials[1:], expected, strict=True):
        assert changed(dump(trial), base) == want  # every other field at its base value
    assert [t.trial_id for t in trials] == [f"t{i:03d}" for i in range(6)]


def test_ofat_with_repeats(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path, "sweep: {mode: ofat, repeats: 2, axes: {train.batch_size: [64, 128]}}\n"
    )
    assert [(t.config.train.batch_size, t.config.train.seed) for t in trials] == [
        (128, 0),
        (128, 1),
        (64, 0),
        (64, 1),
    ]


# ---- mapping-valued axes ----------------------------------------------------------------------


def test_mapping_axis_value_merges_at_the_path(tmp_path: Path) -> None:
    spec, trials, _ = load(
        tmp_path,
        """\
sweep:
  axes:
    model:
      - {name: nn, hidden_channels: [4, 8], hidden_neurons: [32, 32]}
      - {name: lenet, dropout: 0.5}
    train.optimizer.lr: [0.1, 0.01]
""",
    )
    assert len(trials) == 4
    models = [t.config.model for t in trials]
    assert [m.name for m in models] == ["nn", "nn", "lenet", "lenet"]
    assert models[0].kwargs == {"hidden_channels": [4, 8], "hidden_neurons": [32, 32]}
    assert models[2].kwargs == {"dropout": 0.5}
    assert [t.config.train.optimizer.lr for t in trials] == [0.1, 0.01, 0.1, 0.01]
    base = base_config(spec)
    assert changed(dump(trials[2]), base) == {"model.dropout": 0.5, "train.optimizer.lr": 0.1}
    assert swept_params(trials) == ["model", "train.optimizer.lr"]


def test_mapping_axis_merges_with_the_base_section(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        "sweep:\n  axes:\n    train.optimizer: [{name: sgd, lr: 0.1, momentum: 0.9}, {lr: 0.01}]\n",
    )
    opts = [t.config.train.optimizer for t in trials]
    assert [(o.name, o.lr, o.momentum, o.weight_decay) for o in opts] == [
        ("sgd", 0.1, 0.9, 0.01),  # weight_decay kept from the base
        ("adam", 0.01, None, 0.01),
    ]


def test_ofat_mapping_axis_equal_to_base_is_skipped(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        "sweep:\n  mode: ofat\n  axes:\n    train.optimizer: [{name: adam}, {name: sgd}]\n",
    )
    assert [t.overrides for t in trials] == [{}, {"train.optimizer": {"name": "sgd"}}]
    assert trials[1].config.train.optimizer.lr == pytest.approx(1e-3)


def test_switching_model_drops_base_kwargs_the_new_model_does_not_take(tmp_path: Path) -> None:
    head = HEAD.replace("{name: lenet}", "{name: nn, hidden_channels: [4, 8], dropout: 0.25}")
    _, trials, _ = load(tmp_path, "sweep: {axes: {model.name: [nn, lenet, basic_cnn]}}\n", head)
    assert [t.config.model.kwargs for t in trials] == [
        {"hidden_channels": [4, 8], "dropout": 0.25},
        {"dropout": 0.25},  # lenet takes dropout, not hidden_channels
        {},
    ]


# ---- random -----------------------------------------------------------------------------------

RANDOM = """\
sweep:
  mode: random
  samples: 40
  axes:
    train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
    train.optimizer.weight_decay: {uniform: [0.0, 0.5]}
    train.optimizer.name: {choice: [sgd, adam, rmsprop]}
    train.batch_size: {randint: [16, 20]}
    model.name: [lenet, vgg]
"""


def test_random_samples_within_bounds_and_deterministic(tmp_path: Path) -> None:
    spec, trials, _ = load(tmp_path, RANDOM)
    assert 1 < len(trials) <= 40
    for trial in trials:
        o = trial.overrides
        assert list(o) == [
            "train.optimizer.lr",
            "train.optimizer.weight_decay",
            "train.optimizer.name",
            "train.batch_size",
            "model.name",
        ]
        assert 1e-4 <= o["train.optimizer.lr"] <= 1e-1
        assert 0.0 <= o["train.optimizer.weight_decay"] <= 0.5
        assert o["train.optimizer.name"] in {"sgd", "adam", "rmsprop"}
        assert isinstance(o["train.batch_size"], int)
        assert 16 <= o["train.batch_size"] < 20  # randint's upper bound is exclusive (as Tune's)
        assert o["model.name"] in {"lenet", "vgg"}
        assert trial.config.train.optimizer.lr == o["train.optimizer.lr"]
    lrs = [t.overrides["train.optimizer.lr"] for t in trials]
    assert min(lrs) < 1e-3 < max(lrs)  # spread over the decades, not stuck
    assert {t.overrides["train.batch_size"] for t in trials} == {16, 17, 18, 19}
    assert {t.overrides["train.optimizer.name"] for t in trials} == {"sgd", "adam", "rmsprop"}
    again = expand(spec)
    assert [t.overrides for t in again] == [t.overrides for t in trials]
    spec2, _ = load_spec(tmp_path / "sweep.yaml")
    assert [t.overrides for t in expand(spec2)] == [t.overrides for t in trials]


def test_random_depends_on_the_base_seed(tmp_path: Path) -> None:
    sweep = "sweep: {mode: random, samples: 5, axes: {train.optimizer.lr: {uniform: [0.1, 0.9]}}}\n"
    _, first, _ = load(tmp_path, sweep)
    _, other, _ = load(tmp_path, sweep, HEAD + "  seed: 7\n")
    assert [t.overrides for t in first] != [t.overrides for t in other]


def test_random_samples_count(tmp_path: Path) -> None:
    sweep = "sweep: {mode: random, samples: 6, axes: {train.optimizer.lr: {uniform: [0.1, 0.9]}}}\n"
    _, trials, _ = load(tmp_path, sweep)
    assert len(trials) == 6


# ---- repeats ----------------------------------------------------------------------------------


def test_repeats_give_seeds_per_point(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path, "sweep: {repeats: 3, axes: {model.name: [lenet, vgg]}}\n", HEAD + "  seed: 5\n"
    )
    assert len(trials) == 6
    assert [(t.config.model.name, t.config.train.seed) for t in trials] == [
        ("lenet", 5),
        ("lenet", 6),
        ("lenet", 7),
        ("vgg", 5),
        ("vgg", 6),
        ("vgg", 7),
    ]
    assert trials[1].overrides == {"model.name": "lenet", "train.seed": 6}
    assert trials[1].name == "lenet seed=6"
    assert swept_params(trials) == ["model.name", "train.seed"]


def test_repeats_of_the_base_alone(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {repeats: 3}\n")
    assert [t.config.train.seed for t in trials] == [0, 1, 2]


# ---- studies ----------------------------------------------------------------------------------

STUDIES = """\
sweep:
  studies:
    - name: lr
      mode: ofat
      axes: {train.optimizer.lr: [0.01, 0.001, 0.0001]}
    - mode: ofat
      axes: {train.batch_size: [64, 128, 256]}
    - name: sgd
      set: {train.optimizer.name: sgd, train.optimizer.momentum: 0.9}
      axes: {train.optimizer.lr: [0.1, 0.01]}
"""


def test_studies_are_a_union_with_the_shared_base_once(tmp_path: Path) -> None:
    spec, trials, _ = load(tmp_path, STUDIES)
    base = base_config(spec)
    assert len(trials) == 7  # base + 2 lrs + 2 batch sizes + 2 sgd lrs
    assert trials[0].overrides == {}
    assert trials[0].studies == ("lr", "study1")  # an unnamed study is study<index>
    assert dump(trials[0]) == base
    assert [t.studies for t in trials[1:]] == [("lr",)] * 2 + [("study1",)] * 2 + [("sgd",)] * 2
    assert [t.trial_id for t in trials] == [f"t{i:03d}" for i in range(7)]


def test_study_set_applies_to_its_trials_only(tmp_path: Path) -> None:
    spec, trials, _ = load(tmp_path, STUDIES)
    base = base_config(spec)
    sgd = [t for t in trials if t.studies == ("sgd",)]
    assert [t.overrides for t in sgd] == [
        {"train.optimizer.name": "sgd", "train.optimizer.momentum": 0.9, "train.optimizer.lr": lr}
        for lr in (0.1, 0.01)
    ]
    for trial, lr in zip(sgd, (0.1, 0.01), strict=True):
        assert changed(dump(trial), base) == {
            "train.optimizer.name": "sgd",
            "train.optimizer.momentum": 0.9,
            "train.optimizer.lr": lr,
        }
    others = [t for t in trials if "sgd" not in t.studies]
    assert all(t.config.train.optimizer.name == "adam" for t in others)
    assert sgd[0].name == "lenet sgd mom=0.9 lr=0.1"


def test_a_trial_set_by_one_study_and_swept_by_another_runs_once(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        """\
sweep:
  studies:
    - {name: fixed, set: {train.batch_size: 64}}
    - {name: bs, axes: {train.batch_size: [64, 256]}}
""",
    )
    assert [(t.config.train.batch_size, t.studies) for t in trials] == [
        (64, ("fixed", "bs")),
        (256, ("bs",)),
    ]


def test_one_unnamed_study_is_main(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {axes: {train.epochs: [1, 2]}}\n")
    assert {t.studies for t in trials} == {("main",)}


def test_study_set_seed_and_repeats(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path, "sweep: {repeats: 2, studies: [{name: a, set: {train.seed: 10}}]}\n"
    )
    assert [t.config.train.seed for t in trials] == [10, 11]


# ---- names, values, JSON ----------------------------------------------------------------------


def test_trial_name_reads_like_a_run_name(tmp_path: Path) -> None:
    head = HEAD.replace("{name: lenet}", "{name: alexnet}")
    _, trials, _ = load(
        tmp_path,
        """\
sweep:
  axes:
    model.name: [alexnet]
    train.optimizer.lr: [1.0e-4]
    train.optimizer.name: [adam]
    train.batch_size: [128]
""",
        head,
    )
    assert trials[0].name == "alexnet lr=1e-4 adam bs=128"


def test_trial_name_aliases_and_leaf_names(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        """\
sweep:
  axes:
    train.epochs: [2]
    train.optimizer.weight_decay: [0.0005]
    train.optimizer.momentum: [0.9]
    train.loss.label_smoothing: [0.1]
    train.lr_schedule.name: [cosine]
    train.augment: [[crop, flip]]
    train.bf16: [false]
    model.dropout: [0.5]
""",
    )
    assert trials[0].name == (
        "lenet ep=2 wd=5e-4 mom=0.9 ls=0.1 cosine augment=crop-flip bf16=false dropout=0.5"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-4, "1e-4"),
        (3e-3, "3e-3"),
        (0.001, "1e-3"),
        (2.5e-5, "2.5e-5"),
        (-1e-4, "-1e-4"),
        (0.0099, "9.9e-3"),
        (0.01, "0.01"),
        (0.5, "0.5"),
        (1.0, "1"),
        (0.0, "0"),
        (1234.5, "1234.5"),
        (1e5, "1e5"),
        (123456.0, "1.235e5"),
        (100000, "100000"),
        (128, "128"),
        (True, "true"),
        (False, "false"),
        ([16, 32], "16-32"),
        ((4, 8), "4-8"),
        (["crop", "flip"], "crop-flip"),
        ([1e-3, 0.5], "1e-3-0.5"),
        ("adam", "adam"),
        ("", ""),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_to_json(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {axes: {train.optimizer.lr: [0.1]}}\n")
    data = trials[0].to_json()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "trial_id",
        "name",
        "studies",
        "overrides",
        "fingerprint",
        "config",
        "resources",
    }
    assert data["resources"] == {
        "workers_per_trial": 1,
        "cpus_per_worker": 1.0,
        "gpus_per_worker": None,
        "executor": "auto",
    }
    assert Trial.from_json(data) == trials[0]
    assert data["trial_id"] == "t000"
    assert data["name"] == "lenet lr=0.1"
    assert data["studies"] == ["main"]
    assert data["overrides"] == {"train.optimizer.lr": 0.1}
    assert data["config"]["train"]["optimizer"]["lr"] == 0.1
    assert set(data["config"]) == {"dataset", "model", "train"}


def test_plan_report_text_and_json(tmp_path: Path) -> None:
    spec, trials, _ = load(
        tmp_path, "sweep: {axes: {model.name: [lenet, vgg], train.optimizer.lr: [0.1, 1.0e-4]}}\n"
    )
    text = plan_report(spec, trials)
    assert text.splitlines()[0] == "sweep 't': 4 trials, 12 epochs in all"
    assert "base: model lenet, dataset synthetic, 3 epochs, adam lr 1e-3, batch 128" in text
    assert "model.name" in text and "train.optimizer.lr" in text
    assert "t003   vgg         1e-4" in text
    data = json.loads(plan_report(spec, trials, as_json=True))
    assert (data["name"], data["count"], data["epochs"]) == ("t", 4, 12)
    assert data["resources_per_trial"]["workers"] == 1
    assert [t["trial_id"] for t in data["trials"]] == ["t000", "t001", "t002", "t003"]


# ---- invalid trials ---------------------------------------------------------------------------


def test_an_invalid_trial_names_the_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "sweep: {axes: {train.optimizer.lr: [0.1, -1]}}\n")
    message = str(info.value)
    path = tmp_path / "sweep.yaml"
    assert message.startswith(f"{path}: trial t001 (train.optimizer.lr=-1): train.optimizer.lr:")
    assert "greater than 0" in message


def test_an_invalid_model_kwarg_axis_names_the_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "sweep: {axes: {model.width: [1, 2]}}\n")
    message = str(info.value)
    assert "trial t000 (model.width=1)" in message
    assert "model 'lenet' takes no argument 'width'" in message


def test_an_explicit_kwarg_the_new_model_does_not_take_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model 'basic_cnn' takes no argument 'hidden_channels'"):
        load(tmp_path, "sweep: {axes: {model: [{name: basic_cnn, hidden_channels: [4, 8]}]}}\n")


def test_an_invalid_set_names_the_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trial t000 \(train\.epochs=0\): train\.epochs"):
        load(tmp_path, "sweep: {studies: [{set: {train.epochs: 0}}]}\n")


# ---- regressions of bugs found and fixed ------------------------------------------------------


def test_ofat_scientific_notation_without_dot_equal_to_base(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {mode: ofat, axes: {train.optimizer.lr: [1e-3, 1e-2]}}\n")
    assert len(trials) == 2
    assert [t.config.train.optimizer.lr for t in trials] == [pytest.approx(1e-3), 1e-2]


def test_loguniform_with_scientific_notation_without_dot(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        "sweep: {mode: random, samples: 3,\n"
        "        axes: {train.optimizer.lr: {loguniform: [1e-4, 1e-1]}}}\n",
    )
    assert len(trials) == 3
    assert all(1e-4 <= t.config.train.optimizer.lr <= 1e-1 for t in trials)


@pytest.mark.parametrize(
    "dist",
    [
        "{randint: [4, 4]}",
        "{loguniform: [0, 1]}",
        "{loguniform: [0.1]}",
        "{uniform: [a, b]}",
        "{choice: 3}",
        "{choice: []}",
    ],
)
def test_bad_distribution_arguments_are_config_errors(tmp_path: Path, dist: str) -> None:
    with pytest.raises(ConfigError, match="train.batch_size"):
        load(tmp_path, f"sweep: {{mode: random, axes: {{train.batch_size: {dist}}}}}\n")


def test_trial_name_with_a_mapping_model_axis(tmp_path: Path) -> None:
    _, trials, _ = load(
        tmp_path,
        "sweep:\n  axes:\n    model:\n"
        "      - {name: nn, hidden_channels: [4, 8], hidden_neurons: [32, 32]}\n",
    )
    assert trials[0].name == "nn hidden_channels=4-8 hidden_neurons=32-32"


def test_plan_table_shows_mapping_axis_readably(tmp_path: Path) -> None:
    spec, trials, _ = load(
        tmp_path, "sweep:\n  axes:\n    model: [{name: nn, hidden_channels: [4, 8]}, {name: vgg}]\n"
    )
    text = plan_report(spec, trials)
    assert "{'name'" not in text
    assert "hidden_channels=4-8" in text


def test_repeats_with_a_seed_axis(tmp_path: Path) -> None:
    _, trials, _ = load(tmp_path, "sweep: {repeats: 2, axes: {train.seed: [0, 10]}}\n")
    assert [t.config.train.seed for t in trials] == [0, 1, 10, 11]
