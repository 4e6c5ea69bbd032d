"""Tests for the sweep-file schema, loading, `--set` overrides and error messages (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.config import SweepSpec, load_spec, validate_spec
from raysweep.errors import ConfigError, UserError
from raysweep.yamlpaths import (
    deep_merge,
    get_path,
    load_yaml,
    parse_override,
    set_path,
    split_path,
)

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "name: t\ndataset: {name: synthetic}\nmodel: {name: lenet}\n"


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_spec(path, overrides)
    return str(info.value)


# ---- a valid file -----------------------------------------------------------------------------


def test_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    spec, data = load_spec(write(tmp_path, MINIMAL))
    assert isinstance(spec, SweepSpec)
    assert data["name"] == "t"
    assert spec.name == "t"
    assert spec.description == ""
    assert spec.dataset.name == "synthetic"
    assert spec.model.name == "lenet"
    assert spec.model.kwargs == {}
    train = spec.train
    assert (train.epochs, train.batch_size, train.eval_batch_size, train.seed) == (10, 128, 1024, 0)
    assert train.optimizer.name == "adam"
    assert train.optimizer.lr == pytest.approx(1e-3)
    assert train.optimizer.momentum is None
    assert train.loss.name == "cross_entropy"
    assert train.lr_schedule.name == "none"
    assert train.augment == []
    assert train.early_stop is None
    sweep = spec.sweep
    assert (sweep.mode, sweep.repeats, sweep.metric, sweep.goal) == ("grid", 1, "test_acc", "max")
    assert sweep.scheduler.name == "fifo"
    assert len(sweep.studies) == 1
    assert sweep.studies[0].axes == {}
    res = spec.resources
    assert (res.workers_per_trial, res.cpus_per_worker) == (1, 1.0)
    assert res.gpus_per_worker is None
    assert res.max_concurrent is None


def test_quickstart_loads() -> None:
    spec, _ = load_spec(REPO / "experiments" / "quickstart.yaml")
    assert spec.name == "quickstart-digits"
    assert spec.dataset.name == "digits"
    assert spec.sweep.studies[0].axes == {
        "model.name": ["lenet", "basic_cnn"],
        "train.optimizer.lr": [1.0e-3, 3.0e-3],
    }


def test_model_kwargs_are_kept(tmp_path: Path) -> None:
    text = MINIMAL.replace("{name: lenet}", "{name: nn, hidden_channels: [4, 8], batchnorm: true}")
    spec, _ = load_spec(write(tmp_path, text))
    assert spec.model.kwargs == {"hidden_channels": [4, 8], "batchnorm": True}
    assert spec.base_dict()["model"] == {
        "name": "nn",
        "hidden_channels": [4, 8],
        "batchnorm": True,
    }


def test_fractional_gpus_with_one_worker_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "resources: {workers_per_trial: 1, gpus_per_worker: 0.5}\n")
    spec, _ = load_spec(path)
    assert spec.resources.gpus_per_worker == 0.5


def test_asha_within_epochs_is_fine(tmp_path: Path) -> None:
    text = MINIMAL + "train: {epochs: 4}\nsweep: {scheduler: {name: asha, grace_epochs: 4}}\n"
    spec, _ = load_spec(write(tmp_path, text))
    assert spec.sweep.scheduler.name == "asha"
    assert spec.sweep.scheduler.reduction_factor == 3.0


def test_folder_with_path_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("{name: synthetic}", "{name: folder, path: /x/y}"))
    spec, _ = load_spec(path)
    assert spec.dataset.path == "/x/y"


def test_relative_dataset_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = MINIMAL.replace(
        "{name: synthetic}",
        "{name: npz, path: data/x.npz, root: rel/root, cache_dir: ~/cache}",
    )
    spec, data = load_spec(write(tmp_path, text))
    here = tmp_path.resolve()
    assert spec.dataset.path == str(here / "data" / "x.npz")
    assert spec.dataset.root == str(here / "rel" / "root")
    assert spec.dataset.cache_dir == "~/cache"  # ~ is left for the worker to expand
    assert data["dataset"]["path"] == str(here / "data" / "x.npz")


def test_absolute_dataset_path_is_kept(tmp_path: Path) -> None:
    text = MINIMAL.replace("{name: synthetic}", "{name: npz, path: /abs/x.npz}")
    spec, _ = load_spec(write(tmp_path, text))
    assert spec.dataset.path == "/abs/x.npz"


# ---- errors: file, dotted path, what was expected ---------------------------------------------

ERROR_CASES: dict[str, tuple[str, list[str]]] = {
    "top-level-unknown-key": (MINIMAL + "nme: x\n", ["nme: unknown key"]),
    "dataset-unknown-key": (
        MINIMAL.replace("{name: synthetic}", "{name: synthetic, roots: x}"),
        ["dataset.roots: unknown key"],
    ),
    "train-unknown-key": (
        MINIMAL + "train: {optimzer: {lr: 0.1}}\n",
        ["train.optimzer: unknown key"],
    ),
    "optimizer-unknown-key": (
        MINIMAL + "train: {optimizer: {lrr: 0.1}}\n",
        ["train.optimizer.lrr: unknown key"],
    ),
    "scheduler-unknown-key": (
        MINIMAL + "sweep: {scheduler: {name: asha, grace: 1}}\n",
        ["sweep.scheduler.grace: unknown key"],
    ),
    "study-unknown-key": (
        MINIMAL + "sweep: {studies: [{axs: {}}]}\n",
        ["sweep.studies.0.axs: unknown key"],
    ),
    "resources-unknown-key": (
        MINIMAL + "resources: {gpus: 1}\n",
        ["resources.gpus: unknown key"],
    ),
    "wrong-type-epochs": (
        MINIMAL + "train: {epochs: ten}\n",
        ["train.epochs:", "valid integer"],
    ),
    "lr-zero": (
        MINIMAL + "train: {optimizer: {lr: 0}}\n",
        ["train.optimizer.lr:", "greater than 0"],
    ),
    "lr-negative": (
        MINIMAL + "train: {optimizer: {lr: -0.1}}\n",
        ["train.optimizer.lr:", "greater than 0"],
    ),
    "unknown-model": (
        MINIMAL.replace("lenet", "lenett"),
        ["model:", "unknown model 'lenett'", "did you mean 'lenet'?", "available:", "alexnet"],
    ),
    "unknown-model-kwarg": (
        MINIMAL.replace("{name: lenet}", "{name: lenet, width: 3}"),
        ["model:", "model 'lenet' takes no argument 'width'", "it takes: dropout"],
    ),
    "model-kwarg-wrong-type": (
        MINIMAL.replace("{name: lenet}", "{name: nn, hidden_channels: abc}"),
        ["model:", "hidden_channels must be", "'abc'"],
    ),
    "unknown-optimizer": (
        MINIMAL + "train: {optimizer: {name: adamx}}\n",
        ["train.optimizer.name:", "'sgd'", "'adam'", "got 'adamx'"],
    ),
    "unknown-loss": (
        MINIMAL + "train: {loss: {name: l1}}\n",
        ["train.loss.name:", "'cross_entropy'", "'mse'", "got 'l1'"],
    ),
    "unknown-dataset": (
        MINIMAL.replace("synthetic", "cifar100"),
        ["dataset.name:", "'cifar10'", "'digits'", "got 'cifar100'"],
    ),
    "unknown-augment": (
        MINIMAL + "train: {augment: [crop, rotate]}\n",
        ["train.augment.1:", "'crop'", "got 'rotate'"],
    ),
    "axis-path-names-no-field": (
        MINIMAL + "sweep: {axes: {train.optimzer.lr: [0.1, 0.01]}}\n",
        [
            "sweep.axes:",
            "'train.optimzer.lr' names no field",
            "'optimzer' is not in train",
            "did you mean 'optimizer'?",
        ],
    ),
    "axis-path-unknown-section": (
        MINIMAL + "sweep: {axes: {foo.bar: [1, 2]}}\n",
        ["sweep.axes:", "'foo.bar' names no field", "'foo' is not in the sweep file"],
    ),
    "study-set-path-names-no-field": (
        MINIMAL
        + "sweep: {studies: [{axes: {train.epochs: [1]}}, {set: {train.optimzer.lr: 1}}]}\n",
        ["sweep.studies[1].set:", "'train.optimzer.lr' names no field"],
    ),
    "study-axis-path-names-no-field": (
        MINIMAL + "sweep: {studies: [{axes: {train.epoch: [1]}}, {axes: {train.seed: [1]}}]}\n",
        ["sweep.studies[0].axes:", "'train.epoch' names no field", "did you mean 'epochs'?"],
    ),
    "distribution-in-grid": (
        MINIMAL + "sweep: {axes: {train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}}}\n",
        ["sweep", "axis 'train.optimizer.lr'", "distributions need mode: random", "mode is grid"],
    ),
    "distribution-in-ofat": (
        MINIMAL + "sweep: {mode: ofat, axes: {train.batch_size: {choice: [32, 64]}}}\n",
        ["axis 'train.batch_size'", "distributions need mode: random", "mode is ofat"],
    ),
    "axis-mapping-not-a-distribution": (
        MINIMAL + "sweep: {mode: random, axes: {train.epochs: {normal: [1, 2]}}}\n",
        ["sweep.axes:", "axis 'train.epochs'", "one distribution", "loguniform", "['normal']"],
    ),
    "axis-empty-list": (
        MINIMAL + "sweep: {axes: {train.epochs: []}}\n",
        ["sweep.axes:", "axis 'train.epochs'", "non-empty list"],
    ),
    "axis-scalar": (
        MINIMAL + "sweep: {axes: {train.epochs: 3}}\n",
        ["sweep.axes:", "axis 'train.epochs'", "non-empty list"],
    ),
    "asha-grace-beyond-epochs": (
        MINIMAL + "train: {epochs: 2}\nsweep: {scheduler: {name: asha, grace_epochs: 3}}\n",
        ["sweep.scheduler.grace_epochs (3)", "beyond the epochs a trial runs (2)"],
    ),
    "asha-grace-beyond-max-epochs": (
        MINIMAL
        + "train: {epochs: 10}\nsweep: {scheduler: {name: asha, grace_epochs: 3, max_epochs: 2}}\n",
        ["sweep.scheduler.grace_epochs (3)", "(2)"],
    ),
    "folder-without-path": (
        MINIMAL.replace("synthetic", "folder"),
        ["dataset:", "dataset 'folder' needs 'path'"],
    ),
    "npz-without-path": (
        MINIMAL.replace("synthetic", "npz"),
        ["dataset:", "dataset 'npz' needs 'path'"],
    ),
    "label-smoothing-with-mse": (
        MINIMAL + "train: {loss: {name: mse, label_smoothing: 0.1}}\n",
        ["train.loss:", "label_smoothing applies to cross_entropy only"],
    ),
    "fractional-gpus-two-workers": (
        MINIMAL + "resources: {workers_per_trial: 2, gpus_per_worker: 0.5}\n",
        ["resources:", "fractional gpus_per_worker needs workers_per_trial: 1"],
    ),
    "gpus-above-one-not-whole": (
        MINIMAL + "resources: {gpus_per_worker: 1.5}\n",
        ["resources:", "gpus_per_worker above 1 must be a whole number"],
    ),
    "studies-and-axes": (
        MINIMAL + "sweep: {axes: {train.epochs: [1]}, studies: [{axes: {train.epochs: [2]}}]}\n",
        ["sweep:", "either 'axes'/'set' or 'studies'"],
    ),
    "bad-name": (
        MINIMAL.replace("name: t\n", "name: 'my sweep'\n"),
        ["name:", "pattern"],
    ),
    "missing-model": ("name: t\ndataset: {name: synthetic}\n", ["model: Field required"]),
    "bad-metric": (
        MINIMAL + "sweep: {metric: accuracy}\n",
        ["sweep.metric:", "'test_acc'", "got 'accuracy'"],
    ),
    "bad-goal": (MINIMAL + "sweep: {goal: up}\n", ["sweep.goal:", "'max'", "got 'up'"]),
    "bad-mode": (MINIMAL + "sweep: {mode: bayes}\n", ["sweep.mode:", "'ofat'", "got 'bayes'"]),
    "early-stop-needs-patience": (
        MINIMAL + "train: {early_stop: {metric: test_loss}}\n",
        ["train.early_stop.patience: Field required"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES.values(), ids=list(ERROR_CASES))
def test_config_errors(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text, name="bad-sweep.yaml")
    message = error_of(path)
    assert message.startswith(str(path) + ": ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert isinstance(ConfigError(message), UserError)


def test_every_problem_is_listed_on_its_own_line(tmp_path: Path) -> None:
    text = MINIMAL + "train: {epochs: ten, optimizer: {lr: 0, nme: x}}\n"
    path = write(tmp_path, text)
    lines = error_of(path).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    joined = "\n".join(lines)
    for part in ("train.epochs:", "train.optimizer.lr:", "train.optimizer.nme: unknown key"):
        assert part in joined


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\ndataset: {name: synthetic\nmodel: x\n")
    message = error_of(path)
    assert message.startswith(f"{path}:")
    assert "line 3, column 6" in message
    assert "malformed YAML" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    assert "expected a mapping at the top" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="no such sweep file"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_spec(path)


def test_validate_spec_uses_the_source_name() -> None:
    data = yaml.safe_load(MINIMAL + "train: {epochs: 0}\n")
    with pytest.raises(ConfigError) as info:
        validate_spec(data, "my.yaml")
    assert str(info.value).startswith("my.yaml: train.epochs:")
    with pytest.raises(ConfigError, match=r"^<sweep>: train\.epochs"):
        validate_spec(data)


def test_early_stop_on_gap_is_minimized(tmp_path: Path) -> None:
    from raysweep.earlystop import EarlyStopper

    path = write(tmp_path, MINIMAL + "train: {early_stop: {patience: 3, metric: gap}}\n")
    spec, _ = load_spec(path)
    assert spec.train.early_stop is not None
    assert EarlyStopper(spec.train.early_stop, None).goal == "min"  # what train.py builds


# ---- --set overrides --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("train.optimizer.lr=0.01", "train.optimizer.lr", 0.01),
        ("train.epochs=2", "train.epochs", 2),
        ("train.bf16=false", "train.bf16", False),
        ("train.augment=[crop, flip]", "train.augment", ["crop", "flip"]),
        ("model={name: nn, dropout: 0.1}", "model", {"name": "nn", "dropout": 0.1}),
        ("model.name=vgg", "model.name", "vgg"),
        ("description=a=b", "description", "a=b"),
        ("description=", "description", ""),
        (" train.epochs = 3", "train.epochs", 3),
        ("train.early_stop=null", "train.early_stop", None),
        (
            "sweep.axes.train.optimizer.lr=[0.1,0.01]",
            "sweep.axes.train.optimizer.lr",
            [0.1, 0.01],
        ),
    ],
)
def test_parse_override(text: str, key: str, value: Any) -> None:
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs", "expected dotted.key=value"),
        ("=3", "empty key"),
        ("  =3", "empty key"),
        ("train.epochs=[1", "value is not valid YAML"),
        ("model={name: x", "value is not valid YAML"),
    ],
)
def test_bad_override_text(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    message = str(info.value)
    assert message.startswith(f"--set {text!r}")
    assert expected in message


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("train.optimizer.lr", ["train", "optimizer", "lr"]),
        ("name", ["name"]),
        ("sweep.axes.train.optimizer.lr", ["sweep", "axes", "train.optimizer.lr"]),
        ("sweep.axes.model.name", ["sweep", "axes", "model.name"]),
        ("sweep.axes", ["sweep", "axes"]),
        ("sweep.mode", ["sweep", "mode"]),
        ("sweep.set.train.epochs", ["sweep", "set", "train", "epochs"]),
    ],
)
def test_split_path(path: str, keys: list[str]) -> None:
    assert split_path(path) == keys


def test_set_get_path_and_merge() -> None:
    data: dict[str, Any] = {"train": {"optimizer": {"name": "sgd", "lr": 0.1}}}
    set_path(data, "train.optimizer.lr", 0.5)
    set_path(data, "train.early_stop.patience", 3)  # creates the missing mapping
    assert data["train"] == {"optimizer": {"name": "sgd", "lr": 0.5}, "early_stop": {"patience": 3}}
    assert get_path(data, "train.optimizer.name") == "sgd"
    assert get_path(data, "train.nope.x", "dflt") == "dflt"
    assert get_path(data, "train.optimizer.lr.x") is None
    set_path(data, "train.optimizer", {"lr": 1.0}, merge=True)
    assert data["train"]["optimizer"] == {"name": "sgd", "lr": 1.0}
    set_path(data, "train.optimizer", {"lr": 2.0})  # no merge: replaced
    assert data["train"]["optimizer"] == {"lr": 2.0}
    set_path(data, "sweep.axes.train.seed", [1, 2])
    assert data["sweep"]["axes"] == {"train.seed": [1, 2]}
    assert get_path(data, "sweep.axes.train.seed") == [1, 2]


def test_set_path_copies_the_value() -> None:
    value = {"a": [1]}
    data: dict[str, Any] = {}
    set_path(data, "x", value)
    value["a"].append(2)
    assert data == {"x": {"a": [1]}}


def test_deep_merge_does_not_touch_its_inputs() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    extra = {"a": {"b": 2}, "e": 3}
    out = deep_merge(base, extra)
    assert out == {"a": {"b": 2, "c": [1]}, "d": 1, "e": 3}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}
    out["a"]["c"].append(2)
    assert base["a"]["c"] == [1]


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    spec, data = load_spec(
        path,
        [
            "train.epochs=2",
            "train.optimizer.lr=0.05",
            "train.optimizer.name=sgd",
            "model.name=vgg",
            "train.early_stop.patience=3",
            "sweep.mode=ofat",
        ],
    )
    assert spec.train.epochs == 2
    assert spec.train.optimizer.lr == 0.05
    assert spec.train.optimizer.name == "sgd"
    assert spec.model.name == "vgg"
    assert spec.train.early_stop is not None
    assert spec.train.early_stop.patience == 3
    assert spec.sweep.studies[0].mode == "ofat"
    assert data["train"]["epochs"] == 2
    assert path.read_text() == MINIMAL  # the file itself is untouched


def test_override_scientific_notation_lr(tmp_path: Path) -> None:
    spec, _ = load_spec(write(tmp_path, MINIMAL), ["train.optimizer.lr=1e-4"])
    assert spec.train.optimizer.lr == pytest.approx(1e-4)


def test_override_axis_keeps_the_axis_path_as_one_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "sweep: {axes: {model.name: [lenet, vgg]}}\n")
    spec, data = load_spec(path, ["sweep.axes.train.optimizer.lr=[0.1,0.01]"])
    assert data["sweep"]["axes"] == {
        "model.name": ["lenet", "vgg"],
        "train.optimizer.lr": [0.1, 0.01],
    }
    assert spec.sweep.studies[0].axes["train.optimizer.lr"] == [0.1, 0.01]


def test_override_errors_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    message = error_of(path, ("train.epochs=0",))
    assert message.startswith(f"{path}: train.epochs:")
    assert "greater than or equal to 1" in message
    assert "train.optimzer: unknown key" in error_of(path, ("train.optimzer.lr=0.1",))
    assert "names no field" in error_of(path, ("sweep.axes.train.optimzer.lr=[0.1]",))
    assert "expected dotted.key=value" in error_of(path, ("train.epochs",))
