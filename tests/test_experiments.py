"""Every sweep file under experiments/ validates, and plans exactly the number of trials that
docs/experiments.md promises in its `## Trial counts` table (one row per file, and vice versa).

Planning runs in-process (`load_spec` + `expand`, what `raysweep plan` does): no torch, no Ray.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raysweep.config import load_spec
from raysweep.plan import expand

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
DOC = ROOT / "docs" / "experiments.md"
ROW = re.compile(r"^\|\s*(experiments/\S+\.ya?ml)\s*\|\s*(\d+)\s*\|\s*$")


def _sweep_files() -> list[str]:
    return sorted(
        p.relative_to(ROOT).as_posix()
        for pattern in ("*.yaml", "*.yml")
        for p in EXPERIMENTS.rglob(pattern)
    )


def _documented_counts() -> dict[str, int]:
    """The `| experiments/<file>.yaml | <count> |` rows under `## Trial counts`."""
    counts: dict[str, int] = {}
    in_section = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = line.strip() == "## Trial counts"
            continue
        match = ROW.match(line.strip()) if in_section else None
        if match:
            path, count = match.groups()
            assert path not in counts, f"{DOC.name}: two rows for {path}"
            counts[path] = int(count)
    return counts


FILES = _sweep_files()


def _plan(rel: str):
    spec, _ = load_spec(ROOT / rel)
    return spec, expand(spec, rel)


def test_there_are_sweep_files_and_a_counts_table() -> None:
    assert FILES, "no sweep files under experiments/"
    assert _documented_counts(), f"{DOC}: no '| experiments/<file>.yaml | <count> |' rows"


def test_every_file_has_a_row_and_every_row_a_file() -> None:
    documented = set(_documented_counts())
    on_disk = set(FILES)
    assert not on_disk - documented, (
        f"files without a row in {DOC.name} '## Trial counts': {sorted(on_disk - documented)}"
    )
    assert not documented - on_disk, (
        f"rows in {DOC.name} '## Trial counts' without a file: {sorted(documented - on_disk)}"
    )


@pytest.mark.parametrize("rel", FILES)
def test_file_validates_and_plans_the_documented_count(rel: str) -> None:
    spec, trials = _plan(rel)
    assert trials, f"{rel}: plans no trial"
    assert len({t.fingerprint for t in trials}) == len(trials), f"{rel}: duplicate trials"
    documented = _documented_counts().get(rel)
    assert documented is not None, f"{rel}: no row in {DOC.name}"
    assert len(trials) == documented, (
        f"{rel}: `raysweep plan` gives {len(trials)} trials, {DOC.name} says {documented}"
    )


@pytest.mark.parametrize("rel", [f for f in FILES if f.startswith("experiments/cpu_smoke/")])
def test_cpu_smoke_files_are_offline_and_small(rel: str) -> None:
    spec, trials = _plan(rel)
    assert spec.resources.gpus_per_worker is None, f"{rel}: leave gpus_per_worker unset (auto)"
    assert spec.resources.cpus_per_worker == 1, f"{rel}: cpus_per_worker should be 1"
    assert len(trials) <= 8, f"{rel}: {len(trials)} trials is too many for a CPU smoke test"
    heavy = {"resnet18", "vgg_a", "improved_cnn", "alexnet"}
    for t in trials:
        assert t.config.dataset.name == "digits", f"{rel}: {t.trial_id} is not on digits"
        assert t.config.train.epochs <= 2, f"{rel}: {t.trial_id} trains more than 2 epochs"
        if t.config.model.name in heavy:
            assert t.config.train.epochs == 1, f"{rel}: heavy {t.trial_id} runs > 1 epoch"
            assert (t.config.dataset.limit_train or 10**9) <= 256, f"{rel}: {t.trial_id}"
            assert (t.config.dataset.limit_test or 10**9) <= 128, f"{rel}: {t.trial_id}"
    for model in heavy:
        using = [t.trial_id for t in trials if t.config.model.name == model]
        assert len(using) <= 2, f"{rel}: {model} runs in {len(using)} trials: {using}"


@pytest.mark.parametrize("rel", [f for f in FILES if f.startswith("experiments/seed")])
def test_gpu_files_ask_for_gpus_and_real_datasets(rel: str) -> None:
    spec, _ = _plan(rel)
    assert spec.resources.gpus_per_worker == 1, f"{rel}: set gpus_per_worker: 1"
    assert spec.dataset.name in ("cifar10", "fashion_mnist", "mnist"), rel
    assert spec.dataset.download, rel


# Seed 000's "图 1 训练结果总表": run -> (batch, epochs, lr, optimizer, dropout, poly schedule,
# model, loss). The sweep file must plan exactly these 33 runs, each once.
SEED000_RUNS = {
    1: (128, 20, 0.01, "sgd", 0.5, False, "alexnet", "cross_entropy"),
    2: (128, 20, 0.01, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    3: (128, 20, 0.01, "adam", 0.5, False, "alexnet", "cross_entropy"),
    4: (128, 20, 1e-3, "adam", 0.5, False, "alexnet", "cross_entropy"),
    5: (128, 20, 8e-4, "adam", 0.5, False, "alexnet", "cross_entropy"),
    6: (128, 20, 1e-4, "adam", 0.5, False, "alexnet", "cross_entropy"),
    7: (128, 20, 8e-5, "adam", 0.5, False, "alexnet", "cross_entropy"),
    8: (128, 15, 1e-4, "adam", 0.5, True, "alexnet", "cross_entropy"),
    9: (128, 20, 1e-4, "adam", 0.5, True, "alexnet", "cross_entropy"),
    10: (64, 20, 1e-4, "adam", 0.5, True, "alexnet", "cross_entropy"),
    11: (256, 20, 1e-4, "adam", 0.5, True, "alexnet", "cross_entropy"),
    12: (192, 20, 1e-4, "adam", 0.5, True, "alexnet", "cross_entropy"),
    13: (128, 20, 1e-4, "adam", 0.4, True, "alexnet", "cross_entropy"),
    14: (128, 20, 1e-4, "adam", 0.6, True, "alexnet", "cross_entropy"),
    15: (128, 20, 1e-4, "adam", 0.7, True, "alexnet", "cross_entropy"),
    16: (128, 20, 1e-4, "adam", 0.8, True, "alexnet", "cross_entropy"),
    17: (128, 20, 0.05, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    18: (128, 20, 0.008, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    19: (128, 25, 0.008, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    20: (256, 20, 0.01, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    21: (256, 25, 0.01, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    22: (256, 30, 0.01, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    23: (256, 40, 0.01, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    24: (64, 20, 0.008, "sgd", 0.5, True, "alexnet", "cross_entropy"),
    25: (128, 20, 0.01, "sgd", 0.7, True, "alexnet", "cross_entropy"),
    26: (128, 20, 0.01, "sgd", 0.6, True, "alexnet", "cross_entropy"),
    27: (128, 20, 0.01, "sgd", 0.4, True, "alexnet", "cross_entropy"),
    28: (128, 20, 1e-4, "adam", 0.7, True, "vgg", "cross_entropy"),
    29: (128, 20, 1e-4, "adam", 0.7, True, "vgg", "mse"),
    30: (128, 20, 1e-4, "adam", 0.7, True, "alexnet", "mse"),
    31: (128, 20, 0.01, "sgd", 0.5, True, "alexnet", "mse"),
    32: (128, 20, 0.01, "sgd", 0.5, True, "vgg", "mse"),
    33: (128, 20, 0.01, "sgd", 0.5, True, "vgg", "cross_entropy"),
}


def test_seed000_plans_exactly_the_reports_33_runs() -> None:
    _, trials = _plan("experiments/seed000_alexnet_vgg_fashion.yaml")
    planned = sorted(
        (
            t.config.train.batch_size,
            t.config.train.epochs,
            t.config.train.optimizer.lr,
            t.config.train.optimizer.name,
            t.config.model.kwargs["dropout"],
            t.config.train.lr_schedule.name == "poly",
            t.config.model.name,
            t.config.train.loss.name,
        )
        for t in trials
    )
    assert planned == sorted(SEED000_RUNS.values())
