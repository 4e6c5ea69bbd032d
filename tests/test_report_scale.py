"""The report at 48 trials: built with warnings as errors, every figure readable (legends cut to
fit with "+k more"), every study and factor drawn with the right series.

`make_big_sweep` is a synthetic sweep shaped like the seed reports' (a grid of models x
learning rates x batch norm x 2 seeds, a second study that shares trials, early-stopped
trials, a diverged one, per-class accuracies, step logs); other report tests import it. Its
report, `big_report` (tests/conftest.py), is built once per session: test_browser renders it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raysweep.report.plotkit import MAX_LEGEND
from raysweep.report.tables import SweepData, summary_table

LR = "train.optimizer.lr"
BN = "model.batchnorm"
MODEL = "model.name"
SEED = "train.seed"
CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MODELS = {"basic_cnn": 1_147_466, "residual_cnn": 2_816_074, "improved_cnn": 12_906_250}
LRS = (1e-4, 5e-4, 1e-3, 2e-3)


def make_big_sweep(
    epochs: int = 12, steps_per_epoch: int = 8, clean_pass: bool = True
) -> SweepData:
    """48 trials: `grid` = model (3) x lr (4) x batchnorm (2) x seed (2); `baseline` = the
    models at lr 1e-3 without batch norm (6 trials, shared with `grid`). Trials at lr 2e-3
    without batch norm stop early (after epoch 8); t047's loss turns infinite (diverged)."""
    rng = np.random.default_rng(0)
    rows, history, steps, per_class, overrides = [], [], [], [], {}
    i = 0
    for m, (model, size) in enumerate(MODELS.items()):
        for lr in LRS:
            for bn in (False, True):
                for seed in (0, 1):
                    tid = f"t{i:03d}"
                    i += 1
                    last = 8 if (lr == 2e-3 and not bn) else epochs
                    top = 0.6 + 0.08 * m + (0.05 if bn else 0.0) - abs(math.log10(lr / 1e-3)) / 20
                    studies = "grid" + (",baseline" if lr == 1e-3 and not bn else "")
                    status = "early_stopped" if last < epochs else "finished"
                    if tid == "t047":
                        status = "diverged"
                    rows.append(
                        {
                            "trial_id": tid,
                            "name": f"{model} lr={lr:g} bn={bn} seed={seed}",
                            "status": status,
                            "run_id": f"run{tid}",
                            "studies": studies,
                            "num_params": size + (1000 if bn else 0),
                            "model_name": model,
                            MODEL: model,
                            LR: lr,
                            BN: bn,
                            SEED: seed,
                        }
                    )
                    overrides[tid] = {MODEL, LR, BN, SEED}
                    for e in range(1, last + 1):
                        acc = top * (1 - math.exp(-e / 3)) + seed / 200
                        row = {
                            "trial_id": tid,
                            "epoch": e,
                            "test_acc": acc,
                            "train_acc": min(acc + 0.02 * e / epochs, 1.0),
                            "test_loss": 2.3 * (1 - acc) + 0.05 * e / epochs,
                            "train_loss": 2.3 * (1 - acc) - 0.03 * e / epochs,
                            "gap": 0.02 * e / epochs,
                            "epoch_time_s": 2.0 + size / 2e6,
                        }
                        if clean_pass:
                            row["train_eval_acc"] = min(acc + 0.04 * e / epochs, 1.0)
                            row["train_eval_loss"] = 2.3 * (1 - acc) - 0.06 * e / epochs
                        if tid == "t047" and e == last:
                            row["train_loss"] = math.inf
                        history.append(row)
                    for s in range(1, last * steps_per_epoch + 1):
                        level = 2.3 * math.exp(-s / (40 * (1.0 if bn else 2.0) * 1e-3 / lr))
                        noise = float(rng.normal(0, 0.05))
                        steps.append(
                            {
                                "trial_id": tid,
                                "step": s,
                                "epoch": 1 + (s - 1) // steps_per_epoch,
                                "lr": lr,
                                "loss": level + 0.1 + abs(noise),
                            }
                        )
                    for c, name in enumerate(CLASSES):
                        recall = min(1.0, top + 0.1 * math.sin(c + m) + 0.01 * seed)
                        per_class.append({"trial_id": tid, "class": name, "accuracy": recall})
    return SweepData(
        name="big-synthetic",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        steps=pd.DataFrame(steps),
        per_class=pd.DataFrame(per_class),
        axes=[MODEL, LR, BN, SEED],
        overrides=overrides,
    )


def test_48_trials_build_without_warnings_and_every_figure_is_a_file(big_report) -> None:
    names = {p.name for p in big_report.files}
    assert {
        "best_by_axis.png",
        "test_acc_curves.png",
        "gap.png",
        "accuracy_vs_cost.png",
        "loss_landscape.png",
        "curves__grid.png",
        "curves__grid__model.name.png",
        "curves__grid__train.optimizer.lr.png",
        "curves__grid__model.batchnorm.png",
        "curves__baseline.png",
        "per_class__grid.png",
        "per_class__baseline.png",
        "report.html",
    } <= names
    assert "curves__baseline__model.name.png" not in names  # one factor: one figure
    for info in big_report.plots.values():
        assert info.path.is_file() and info.path.stat().st_size > 5000, info.path


def test_legends_fit_with_a_count_of_the_rest(big_report) -> None:
    curves = big_report.plots["curves"]
    assert curves.series == 48
    [legend] = curves.legends
    assert len(legend) == MAX_LEGEND and legend[-1] == f"+{48 - MAX_LEGEND + 1} more"
    for info in big_report.plots.values():
        assert all(len(entries) <= MAX_LEGEND for entries in info.legends), info.path.name


def test_study_figures_hold_one_line_per_configuration(big_report) -> None:
    grid = big_report.plots["curves:grid"]
    # 3 models x 4 lr x 2 bn = 24 configurations, the seeds averaged; four panels
    assert [title.split(" (")[0] for title, _ in grid.panels] == [
        "train accuracy",
        "test accuracy",
        "train loss",
        "test loss",
    ]
    assert "clean eval pass" in grid.panels[0][0]
    assert all(len(labels) == 24 for _, labels in grid.panels)
    assert grid.panels[1][1][0] == "basic_cnn, lr=1e-4, batchnorm=false"
    by_lr = big_report.plots["curves:grid:train.optimizer.lr"]
    labels = by_lr.panels[1][1]
    assert len(labels) == 24 and labels[0] == "lr=1e-4, basic_cnn, batchnorm=false"
    baseline = big_report.plots["curves:baseline"]
    assert baseline.panels[1][1] == ["basic_cnn", "improved_cnn", "residual_cnn"]  # by name


def test_per_class_heatmap_rows_are_the_studys_trials_in_summary_order(big_report) -> None:
    heat = big_report.plots["per_class:baseline"]
    assert heat.columns == CLASSES
    [(_, rows)] = heat.panels
    table = big_report.table
    expected = list(table[table["studies"].str.contains("baseline")]["trial_id"])
    assert [r.split()[0] for r in rows] == expected and len(rows) == 6
    assert len(big_report.plots["per_class:grid"].panels[0][1]) == 48


def test_cost_figure_has_a_point_per_trial(big_report) -> None:
    cost = big_report.plots["cost"]
    assert [key for key, _ in cost.panels] == ["num_params", "duration_s"]
    assert all(len(points) == 48 for _, points in cost.panels)
    assert cost.legends == [["basic_cnn", "improved_cnn", "residual_cnn"]]


def test_band_cut_shortest_ends_at_the_early_stopped_trials(big_report) -> None:
    band = big_report.plots["loss_landscape"]
    assert len(band.panels[0][1]) == 6  # 3 models x batchnorm
    assert "cut to its shortest run" in band.title


def test_summary_has_the_new_columns() -> None:
    table = summary_table(make_big_sweep())
    top = table.iloc[0]
    assert top["num_params"] in {size + 1000 for size in MODELS.values()}
    assert top["duration_s"] == pytest.approx(12 * (2.0 + top["num_params"] / 2e6), rel=1e-3)
    assert top["best_train_acc_epoch"] == 12 and top["best_test_loss_epoch"] <= 12
    # gap = train_eval_acc - test_acc at the last epoch where the clean pass was logged
    assert top["gap"] == pytest.approx(top["train_eval_acc"] - top["test_acc"])
