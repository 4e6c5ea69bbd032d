"""Tests for raysweep.report on hand-made sweeps: rows, mean/std over seeds, bands, plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from raysweep.report.build import write_report
from raysweep.report.landscape import loss_bands, plot_loss_bands
from raysweep.report.plots import plot_best_by_axis, plot_curves, plot_gap
from raysweep.report.tables import (
    SweepData,
    best_row,
    grouped_summary,
    has_repeats,
    summary_table,
)
from raysweep.report.text import markdown_table, text_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LR = "train.optimizer.lr"
BN = "model.batchnorm"


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 2000  # something was drawn
    from PIL import Image

    with Image.open(path) as image:
        assert image.width > 200 and image.height > 100


def make_sweep(seeds: tuple[int, ...] = (0,), epochs: int = 3, steps: int = 5) -> SweepData:
    """A grid over lr x batchnorm (x seeds): test_acc = f(lr, bn) + seed / 100."""
    rows, history, step_rows, overrides = [], [], [], {}
    i = 0
    for bn in (False, True):
        for lr in (1e-3, 1e-2):
            for seed in seeds:
                tid = f"t{i:03d}"
                i += 1
                base = 0.5 + (0.2 if bn else 0.0) + (0.1 if lr == 1e-2 else 0.0) + seed / 100
                row = {
                    "trial_id": tid,
                    "name": f"vgg lr={lr} bn={bn}",
                    "status": "finished",
                    "run_id": f"run{tid}",
                    "studies": "main",
                    "duration_s": 10.0 + i,
                    LR: lr,
                    BN: bn,
                }
                axes_set = {LR, BN}
                if len(seeds) > 1:
                    row["train.seed"] = seed
                    axes_set.add("train.seed")
                overrides[tid] = axes_set
                rows.append(row)
                for e in range(1, epochs + 1):
                    acc = base * e / epochs
                    history.append(
                        {
                            "trial_id": tid,
                            "epoch": e,
                            "test_acc": acc,
                            "train_acc": acc + 0.05,
                            "test_loss": 2.0 - acc,
                            "train_loss": 2.1 - acc,
                            "gap": 0.05,
                        }
                    )
                for s in range(1, steps + 1):
                    # loss = lr-dependent level: the band over lr is [level(1e-3), level(1e-2)]
                    level = (3.0 if lr == 1e-3 else 1.0) + (0.0 if bn else 10.0) + seed
                    step_rows.append(
                        {"trial_id": tid, "step": s, "epoch": 1, "lr": lr, "loss": level / s}
                    )
    axes = [LR, BN] + (["train.seed"] if len(seeds) > 1 else [])
    return SweepData(
        name="hand-made",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        steps=pd.DataFrame(step_rows),
        axes=axes,
        overrides=overrides,
    )


def test_summary_rows_best_first_and_filled_from_history() -> None:
    sweep = make_sweep()
    table = summary_table(sweep)
    assert len(table) == 4
    assert list(table["trial_id"]) == ["t003", "t002", "t001", "t000"]
    top = table.iloc[0]
    assert top[LR] == pytest.approx(1e-2) and top[BN] is True
    assert top["best_test_acc"] == pytest.approx(0.8)
    assert top["best_epoch"] == 3 and top["epochs"] == 3
    assert top["test_acc"] == pytest.approx(0.8)
    assert top["run_id"] == "runt003"
    assert best_row(table, "test_acc", "max")["trial_id"] == "t003"
    assert best_row(table, "test_loss", "min")["trial_id"] == "t003"


def test_failed_and_diverged_trials_rank_last_and_never_best() -> None:
    sweep = make_sweep()
    trials = sweep.trials.copy()
    trials.loc[trials["trial_id"] == "t003", "status"] = "diverged"
    extra = {"trial_id": "t004", "name": "broken", "status": "failed", LR: 0.1, BN: False}
    sweep.trials = pd.concat([trials, pd.DataFrame([extra])], ignore_index=True)
    table = summary_table(sweep)
    assert list(table["trial_id"])[-2:] == ["t003", "t004"]
    assert math.isnan(table.iloc[-1]["best_test_acc"])
    assert best_row(table, "test_acc", "max")["trial_id"] == "t002"


def test_grouped_mean_and_std_over_seeds() -> None:
    sweep = make_sweep(seeds=(0, 1, 2))
    table = summary_table(sweep)
    assert has_repeats(table, sweep.axes)
    assert not has_repeats(summary_table(make_sweep()), make_sweep().axes)
    grouped = grouped_summary(table, sweep.axes)
    assert len(grouped) == 4
    top = grouped.iloc[0]
    assert top[LR] == pytest.approx(1e-2) and top[BN] is True
    assert top["n"] == 3 and top["seeds"] == "0,1,2"
    assert top["best_test_acc_mean"] == pytest.approx(0.81)  # 0.80, 0.81, 0.82
    assert top["best_test_acc_std"] == pytest.approx(np.std([0.80, 0.81, 0.82], ddof=1))
    assert "train.seed" not in grouped.columns
    md = markdown_table(grouped, grouped=True)
    assert "81.00% ± 1.00%" in md
    assert "best_test_acc (mean ± std)" in md


def test_loss_band_min_max_per_group() -> None:
    sweep = make_sweep()
    bands = {b.label: b for b in loss_bands(sweep, summary_table(sweep))}
    assert set(bands) == {"batchnorm=false", "batchnorm=true"}
    bn = bands["batchnorm=true"]
    assert list(bn.steps) == [1, 2, 3, 4, 5]
    assert sorted(bn.trials) == ["t002", "t003"]
    np.testing.assert_allclose(bn.low, [1.0 / s for s in range(1, 6)])
    np.testing.assert_allclose(bn.high, [3.0 / s for s in range(1, 6)])
    no_bn = bands["batchnorm=false"]
    np.testing.assert_allclose(no_bn.low, [11.0 / s for s in range(1, 6)])
    np.testing.assert_allclose(no_bn.high, [13.0 / s for s in range(1, 6)])


def test_loss_band_ragged_and_non_finite_steps() -> None:
    sweep = make_sweep()
    steps = sweep.steps
    # t000 stopped after 3 steps; t001's step 2 exploded to inf.
    steps = steps[~((steps["trial_id"] == "t000") & (steps["step"] > 3))].copy()
    steps.loc[(steps["trial_id"] == "t001") & (steps["step"] == 2), "loss"] = math.inf
    sweep.steps = steps
    band = {b.label: b for b in loss_bands(sweep, summary_table(sweep))}["batchnorm=false"]
    np.testing.assert_allclose(band.low, [11.0, 13.0 / 2, 11.0 / 3, 11.0 / 4, 11.0 / 5])
    np.testing.assert_allclose(band.high, [13.0, 13.0 / 2, 13.0 / 3, 11.0 / 4, 11.0 / 5])


def test_loss_band_of_a_group_with_one_trial() -> None:
    """One trial in a group: its band is its own curve (pandas' copy-on-write hands back a
    read-only array there, which the band must not write into)."""
    sweep = make_sweep()
    sweep.steps = sweep.steps[sweep.steps["trial_id"] != "t001"]
    band = {b.label: b for b in loss_bands(sweep, summary_table(sweep))}["batchnorm=false"]
    assert band.trials == ["t000"]
    np.testing.assert_allclose(band.low, [13.0 / s for s in range(1, 6)])
    np.testing.assert_allclose(band.high, band.low)


def test_no_band_without_lr_axis() -> None:
    sweep = make_sweep()
    sweep.axes = [BN]
    assert loss_bands(sweep, summary_table(sweep)) == []


def test_plots_are_pngs_with_the_expected_series(tmp_path: Path) -> None:
    sweep = make_sweep()
    table = summary_table(sweep)
    best = plot_best_by_axis(sweep, table, tmp_path / "best.png")
    assert_png(best.path)
    # one panel per axis, one series per value of the other axis
    assert [title for title, _ in best.panels] == [LR, BN]
    assert best.panels[0][1] == ["batchnorm=false", "batchnorm=true"]
    assert best.panels[1][1] == ["lr=1e-3", "lr=0.01"]
    curves = plot_curves(sweep, table, tmp_path / "curves.png")
    assert_png(curves.path)
    assert curves.series == 4
    gap = plot_gap(sweep, table, tmp_path / "gap.png")
    assert_png(gap.path)
    assert gap.series == 4
    bands = plot_loss_bands(sweep, loss_bands(sweep, table), tmp_path / "bands.png")
    assert_png(bands.path)
    assert bands.series == 2


def test_ofat_panels_hold_the_base_and_their_own_axis_only(tmp_path: Path) -> None:
    rows = [
        {"trial_id": "t000", "name": "base", "status": "finished", LR: 1e-3, BN: False},
        {"trial_id": "t001", "name": "lr", "status": "finished", LR: 1e-2, BN: False},
        {"trial_id": "t002", "name": "bn", "status": "finished", LR: 1e-3, BN: True},
    ]
    history = [
        {"trial_id": t, "epoch": 1, "test_acc": acc}
        for t, acc in (("t000", 0.5), ("t001", 0.6), ("t002", 0.7))
    ]
    sweep = SweepData(
        name="ofat",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        axes=[LR, BN],
        overrides={"t000": set(), "t001": {LR}, "t002": {BN}},
    )
    info = plot_best_by_axis(sweep, summary_table(sweep), tmp_path / "ofat.png")
    assert_png(info.path)
    assert [len(labels) for _, labels in info.panels] == [1, 1]  # no one-point stray series


def test_repeats_plot_error_bars(tmp_path: Path) -> None:
    sweep = make_sweep(seeds=(0, 1))
    table = summary_table(sweep)
    info = plot_best_by_axis(sweep, table, tmp_path / "best.png")
    assert [t for t, _ in info.panels] == [LR, BN]  # the seed is not an axis of its own
    assert info.series == 4


def test_write_report_files(tmp_path: Path) -> None:
    report = write_report(make_sweep(seeds=(0, 1)), tmp_path / "out")
    names = {p.name for p in report.files}
    assert names == {
        "summary.parquet",
        "summary.csv",
        "summary.md",
        "summary_by_config.parquet",
        "summary_by_config.csv",
        "best_by_axis.png",
        "test_acc_curves.png",
        "gap.png",
        "accuracy_vs_cost.png",
        "loss_landscape.png",
        "curves__main.png",
        "curves__main__train.optimizer.lr.png",
        "curves__main__model.batchnorm.png",
        "report.html",
    }
    for path in report.files:
        if path.suffix == ".png":
            assert_png(path)
    assert report.files[-1] == report.page == tmp_path / "out" / "report.html"
    back = pq.read_table(tmp_path / "out" / "summary.parquet").to_pandas()
    assert len(back) == 8 and list(back["trial_id"]) == list(report.table["trial_id"])
    assert back[LR].dtype == np.float64 and back[BN].dtype == bool
    csv = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(csv) == 8
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Mean ± std over seeds" in md and "| trial_id | status |" in md


def test_text_table_formats_values() -> None:
    text = text_table(summary_table(make_sweep()))
    header, first = text.splitlines()[:2]
    assert header.split()[:4] == ["trial_id", "status", LR, BN]
    assert first.split()[:5] == ["t003", "finished", "0.01", "true", "80.00%"]


def test_mixed_axis_values_become_text(tmp_path: Path) -> None:
    rows = [
        {"trial_id": "t000", "name": "a", "status": "finished", "model": {"name": "lenet"}},
        {"trial_id": "t001", "name": "b", "status": "finished", "model": None},
        {"trial_id": "t002", "name": "c", "status": "failed", "model": 3},
    ]
    sweep = SweepData(name="mixed", trials=pd.DataFrame(rows), axes=["model"])
    report = write_report(sweep, tmp_path)
    assert list(report.table["model"]) == ["name=lenet", None, "3"]
    assert "loss_landscape" not in report.plots
    assert pq.read_table(tmp_path / "summary.parquet").num_rows == 3


def test_param_text_back_to_values() -> None:
    from raysweep.report.store import parse_param

    assert parse_param("0.001") == 0.001 and parse_param("64") == 64
    assert parse_param("True") is True and parse_param("None") is None
    assert parse_param("[16, 32]") == [16, 32] and parse_param("adam") == "adam"
    assert parse_param("~/.cache") == "~/.cache" and parse_param("1e-08") == 1e-8


def test_compare_commands_registered_without_heavy_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from raysweep.cli import cli\n"
        "for name in ('report', 'best', 'predict', 'export'):\n"
        "    result = CliRunner().invoke(cli, [name, '--help'])\n"
        "    assert result.exit_code == 0 and '--tracking-uri' in result.output, result.output\n"
        "heavy = ('mlflow', 'torch', 'ray', 'pandas', 'matplotlib')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
