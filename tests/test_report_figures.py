"""The report's figures on small hand-made sweeps: studies and their factors (ofat and grid), the
series each curves figure draws, per-class heatmaps, accuracy against size and time, the loss
band cut to its shortest run, and runs from before the training side logged the new numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysweep.report.build import write_report
from raysweep.report.class_plots import class_matrix, plot_per_class
from raysweep.report.cost_plots import plot_accuracy_vs_cost
from raysweep.report.landscape import loss_bands
from raysweep.report.plotkit import fit_legend
from raysweep.report.studies import factor_lines, find_studies, study_lines
from raysweep.report.study_plots import plot_lines
from raysweep.report.tables import SweepData, summary_table
from raysweep.report.text import markdown_table, text_table
from tests.test_analysis import assert_png, make_sweep

WD = "train.optimizer.weight_decay"
ACT = "model.activation"


def ofat_sweep() -> SweepData:
    """Seed 004's shape: study `main` = base + 2 weight decays + 1 activation; study `extra`
    shares the base. Seed-004-like numbers: train accuracy keeps rising, test peaks early."""
    specs = [
        ("t000", "nn base", 0.0, "relu", "main,extra"),
        ("t001", "nn wd=0.05", 0.05, "relu", "main"),
        ("t002", "nn wd=0.01", 0.01, "relu", "main"),
        ("t003", "nn activation=tanh", 0.0, "tanh", "main"),
    ]
    rows, history, per_class = [], [], []
    for n, (tid, name, wd, act, studies) in enumerate(specs):
        rows.append(
            {
                "trial_id": tid,
                "name": name,
                "status": "finished",
                "studies": studies,
                WD: wd,
                ACT: act,
                "model_name": "nn",
                "num_params": 285_162,
                "train_time_s": 40.0 + n,
            }
        )
        for e in range(1, 5):
            test = 0.5 + 0.05 * n + (0.02 * e if e <= 2 else 0.04 - 0.01 * (e - 2))
            history.append(
                {
                    "trial_id": tid,
                    "epoch": e,
                    "test_acc": test,
                    "train_acc": 0.5 + 0.1 * e,
                    "test_loss": 1.5 - test,
                    "train_loss": 1.0 - 0.1 * e,
                    "gap": 0.5 + 0.1 * e - test,
                    "epoch_time_s": 10.0,
                }
            )
        for cls in ("cat", "dog", "ship"):
            per_class.append({"trial_id": tid, "class": cls, "accuracy": 0.5 + 0.1 * n})
    return SweepData(
        name="ofat",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        per_class=pd.DataFrame(per_class),
        axes=[WD, ACT],
        overrides={"t000": set(), "t001": {WD}, "t002": {WD}, "t003": {ACT}},
    )


def test_studies_and_their_factors() -> None:
    sweep = ofat_sweep()
    table = summary_table(sweep)
    studies = {s.name: s for s in find_studies(sweep, table)}
    assert list(studies) == ["main", "extra"]
    assert studies["main"].factors == [WD, ACT]
    assert sorted(studies["main"].trials) == ["t000", "t001", "t002", "t003"]
    assert studies["extra"].trials == ["t000"] and studies["extra"].factors == []


def test_ofat_factor_lines_are_the_base_and_that_factors_trials() -> None:
    sweep = ofat_sweep()
    table = summary_table(sweep)
    main = next(s for s in find_studies(sweep, table) if s.name == "main")
    rows = [r for r in table.to_dict("records") if r["trial_id"] in main.trials]
    by_wd = factor_lines(main, rows, WD)
    assert [(ln.label, ln.trials) for ln in by_wd] == [
        ("weight_decay=0", ["t000"]),
        ("weight_decay=0.01", ["t002"]),
        ("weight_decay=0.05", ["t001"]),
    ]
    by_act = factor_lines(main, rows, ACT)
    assert [(ln.label, ln.trials) for ln in by_act] == [
        ("activation=relu", ["t000"]),
        ("activation=tanh", ["t003"]),
    ]
    assert [ln.label for ln in study_lines(main, rows)] == [
        "weight_decay=0, activation=relu",
        "weight_decay=0, activation=tanh",
        "weight_decay=0.01, activation=relu",
        "weight_decay=0.05, activation=relu",
    ]


def test_grid_factor_lines_average_the_seeds() -> None:
    sweep = make_sweep(seeds=(0, 1))
    table = summary_table(sweep)
    [study] = find_studies(sweep, table)
    assert study.factors == ["train.optimizer.lr", "model.batchnorm"]  # never the seed
    lines = factor_lines(study, table.to_dict("records"), "train.optimizer.lr")
    assert len(lines) == 4 and all(len(ln.trials) == 2 for ln in lines)
    assert lines[0].label == "lr=1e-3, batchnorm=false"


def test_curves_figure_draws_train_and_test_per_line(tmp_path: Path) -> None:
    sweep = ofat_sweep()
    table = summary_table(sweep)
    main = next(s for s in find_studies(sweep, table) if s.name == "main")
    rows = [r for r in table.to_dict("records") if r["trial_id"] in main.trials]
    info = plot_lines(sweep, factor_lines(main, rows, WD), "wd", tmp_path / "wd.png", True)
    assert_png(info.path)
    titles = [t for t, _ in info.panels]
    assert titles == [
        "train accuracy (running, in training)",
        "test accuracy",
        "train loss (running, in training)",
        "test loss",
    ]
    assert all(
        labels == ["weight_decay=0", "weight_decay=0.01", "weight_decay=0.05"]
        for _, labels in info.panels
    )
    assert info.legends == [["weight_decay=0", "weight_decay=0.01", "weight_decay=0.05"]]
    # no history: no figure
    empty = SweepData(name="x", trials=sweep.trials, axes=sweep.axes)
    assert plot_lines(empty, factor_lines(main, rows, WD), "wd", tmp_path / "no.png") is None


def test_write_report_draws_a_figure_per_study_and_factor(tmp_path: Path) -> None:
    report = write_report(ofat_sweep(), tmp_path)
    names = {p.name for p in report.files}
    assert {
        "curves__main.png",
        "curves__main__train.optimizer.weight_decay.png",
        "curves__main__model.activation.png",
        "curves__extra.png",
        "per_class__main.png",
        "per_class__extra.png",
        "accuracy_vs_cost.png",
    } <= names
    assert "loss_landscape.png" not in names  # no lr axis, no band (seed 004)
    assert report.plots["curves:extra"].panels[1][1] == ["t000 nn base"]
    assert [s.title for s in report.sections] == ["Overview", "Study main", "Study extra"]


def test_per_class_heatmap_is_trials_by_classes(tmp_path: Path) -> None:
    sweep = ofat_sweep()
    trials, classes, matrix = class_matrix(sweep.per_class, ["t003", "t000", "t404"])
    assert trials == ["t003", "t000"] and classes == ["cat", "dog", "ship"]
    np.testing.assert_allclose(matrix, [[0.8, 0.8, 0.8], [0.5, 0.5, 0.5]])
    info = plot_per_class(sweep.per_class, ["t003", "t000"], {}, "pc", tmp_path / "pc.png")
    assert_png(info.path)
    assert info.panels == [("pc", ["t003", "t000"])] and info.columns == ["cat", "dog", "ship"]
    assert plot_per_class(pd.DataFrame(), ["t000"], {}, "pc", tmp_path / "none.png") is None


def test_accuracy_against_size_and_time(tmp_path: Path) -> None:
    sweep = ofat_sweep()
    info = plot_accuracy_vs_cost(sweep, summary_table(sweep), tmp_path / "cost.png")
    assert_png(info.path)
    assert [k for k, _ in info.panels] == ["num_params", "duration_s"]
    assert sorted(info.panels[0][1]) == ["t000", "t001", "t002", "t003"]
    # a sweep from before num_params, train_time_s and epoch times: no such figure
    old = make_sweep()
    old.trials = old.trials.drop(columns=["duration_s"])
    assert plot_accuracy_vs_cost(old, summary_table(old), tmp_path / "old.png") is None


def test_band_cut_to_the_shortest_run() -> None:
    sweep = make_sweep()
    steps = sweep.steps
    sweep.steps = steps[~((steps["trial_id"] == "t000") & (steps["step"] > 3))]
    table = summary_table(sweep)
    full = {b.label: b for b in loss_bands(sweep, table)}["batchnorm=false"]
    cut = {b.label: b for b in loss_bands(sweep, table, cut="shortest")}["batchnorm=false"]
    assert list(full.steps) == [1, 2, 3, 4, 5] and full.cut_at is None
    assert list(cut.steps) == [1, 2, 3] and cut.cut_at == 3
    np.testing.assert_allclose(cut.low, [11.0 / s for s in (1, 2, 3)])
    np.testing.assert_allclose(cut.high, [13.0 / s for s in (1, 2, 3)])
    untouched = {b.label: b for b in loss_bands(sweep, table, cut="shortest")}["batchnorm=true"]
    assert list(untouched.steps) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="band cut"):
        loss_bands(sweep, table, cut="longest")


def test_new_columns_from_logged_values_and_from_history() -> None:
    sweep = ofat_sweep()
    table = summary_table(sweep).set_index("trial_id")
    base = table.loc["t000"]
    assert base["num_params"] == 285_162 and base["duration_s"] == 40.0  # train_time_s
    assert base["best_train_acc"] == pytest.approx(0.9) and base["best_train_acc_epoch"] == 4
    assert base["best_train_loss"] == pytest.approx(0.6) and base["best_train_loss_epoch"] == 4
    assert base["best_test_acc"] == pytest.approx(0.54) and base["best_epoch"] == 2
    assert base["best_test_loss"] == pytest.approx(0.96) and base["best_test_loss_epoch"] == 2
    # logged values win over the history's
    sweep.trials.loc[0, "best_train_acc"] = 0.95
    sweep.trials.loc[0, "best_train_acc_epoch"] = 3
    again = summary_table(sweep).set_index("trial_id").loc["t000"]
    assert again["best_train_acc"] == 0.95 and again["best_train_acc_epoch"] == 3


def test_older_runs_without_the_new_numbers() -> None:
    """No num_params, no train_time_s, no epoch times: the columns stay empty and are not
    shown; the duration is never the MLflow run's wall time."""
    sweep = make_sweep()
    sweep.trials = sweep.trials.drop(columns=["duration_s"])
    table = summary_table(sweep)
    assert table["num_params"].isna().all() and table["duration_s"].isna().all()
    header = text_table(table).splitlines()[0].split()
    assert "num_params" not in header and "duration_s" not in header
    assert "best_train_acc" in header and "best_train_acc_epoch" in header
    md = markdown_table(table)
    assert "| best_train_loss |" in md or "best_train_loss |" in md
    # the sum of the epoch times where no train_time_s was logged
    timed = make_sweep()
    timed.trials = timed.trials.drop(columns=["duration_s"])
    timed.history["epoch_time_s"] = 2.5
    assert summary_table(timed)["duration_s"].tolist() == [7.5] * 4


def test_clean_train_pass_defines_the_gap() -> None:
    sweep = make_sweep()
    sweep.history["train_eval_acc"] = sweep.history["test_acc"] + 0.1
    table = summary_table(sweep)
    assert table["gap"].tolist() == pytest.approx([0.1] * 4)  # not the logged 0.05
    assert table["train_eval_acc"].notna().all()


def test_a_legend_keeps_its_first_entries_and_counts_the_rest() -> None:
    handles, labels = fit_legend(list(range(30)), [f"s{i}" for i in range(30)], limit=10)
    assert labels == [*(f"s{i}" for i in range(9)), "+21 more"] and len(handles) == 10
    assert fit_legend([1], ["x" * 80])[1] == ["x" * 47 + "…"]
    assert fit_legend(list(range(5)), list("abcde"))[1] == list("abcde")


def test_a_mapping_axis_spelled_by_its_fields_is_not_a_factor() -> None:
    """Seed 000's 图 3: runs 2, 17, 18 vary lr; run 19 sets `train: {epochs: 25, optimizer:
    {lr: 0.008}}`. Its `train` value follows from train.epochs and train.optimizer.lr, so the
    study's factors are those two, and its figure is the report's four runs."""
    lr, epochs = "train.optimizer.lr", "train.epochs"
    mapping = {"epochs": 25, "optimizer": {"lr": 0.008}}
    specs = [("t014", 0.01, 20, None), ("t015", 0.05, 20, None), ("t016", 0.008, 20, None)]
    specs.append(("t017", 0.008, 25, mapping))
    rows = [
        {
            "trial_id": t,
            "name": t,
            "status": "finished",
            "studies": "fig3_sgd_lr",
            lr: v,
            epochs: e,
            "train": m,
        }
        for t, v, e, m in specs
    ]
    history = [{"trial_id": t, "epoch": 1, "test_acc": 0.5} for t, *_ in specs]
    sweep = SweepData(
        name="fig3",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        axes=[lr, epochs, "train"],
        overrides={"t014": set(), "t015": {lr}, "t016": {lr}, "t017": {"train"}},
    )
    table = summary_table(sweep)
    [study] = find_studies(sweep, table)
    assert study.factors == [lr, epochs]
    records = table.to_dict("records")
    assert [ln.label for ln in study_lines(study, records)] == [
        "lr=8e-3, epochs=20",
        "lr=8e-3, epochs=25",
        "lr=0.01, epochs=20",
        "lr=0.05, epochs=20",
    ]
    assert [ln.trials for ln in factor_lines(study, records, lr)] == [["t016"], ["t014"], ["t015"]]
    assert [ln.trials for ln in factor_lines(study, records, epochs)] == [["t016"], ["t017"]]
    # a mapping that sets a field no axis spells (seed 001's lr) stays a factor
    sweep.axes = [epochs, "train"]
    assert find_studies(sweep, summary_table(sweep))[0].factors == [epochs, "train"]
