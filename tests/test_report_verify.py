"""The rules `scripts/smoke.py` checks a logged report with (`raysweep.report.verify`), on a
report drawn from made-up numbers for a real plan (no MLflow): what is right passes, and each
kind of wrong is named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raysweep.plan import Trial
from raysweep.report.build import Report, write_report
from raysweep.report.tables import SweepData
from raysweep.report.verify import page_problems, study_problems, summary_problems
from tests.fakes import make_trials

SWEEP = {
    "studies": [
        # two factors: a figure per factor too
        {
            "name": "grid",
            "axes": {"train.optimizer.lr": [1e-3, 1e-2], "train.batch_size": [32, 64]},
        },
        {"name": "single", "set": {"train.optimizer.lr": 3e-3}},
    ]
}


def _leaf(config: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        config = config.get(part, {}) if isinstance(config, dict) else {}
    return None if isinstance(config, dict) else config


def sweep_of(trials: list[Trial]) -> SweepData:
    """The sweep of `trials` as `raysweep.report.read` would read it, with made-up numbers:
    every trial ran its epochs and logged per-class accuracy for 3 classes."""
    axes = list(dict.fromkeys(k for t in trials for k in t.overrides))
    rows, history, per_class = [], [], []
    for i, t in enumerate(trials):
        config = t.config.model_dump(mode="json")
        row = {
            "trial_id": t.trial_id,
            "name": t.name,
            "status": "finished",
            "run_id": f"run{i}",
            "studies": ",".join(t.studies),
            "epochs": t.config.train.epochs,
            "num_params": 1000 + i,
            "train_time_s": 2.0 + i,
        }
        row.update({a: t.overrides.get(a, _leaf(config, a)) for a in axes})
        rows.append(row)
        for e in range(1, t.config.train.epochs + 1):
            acc = 0.5 + 0.01 * i + 0.1 * e
            history.append(
                {"trial_id": t.trial_id, "epoch": e, "test_acc": acc, "train_acc": acc + 0.05}
                | {"test_loss": 1 / e, "train_loss": 1.1 / e, "gap": 0.05}
            )
        per_class += [
            {"trial_id": t.trial_id, "class": c, "accuracy": 0.9} for c in ("a", "b", "c")
        ]
    return SweepData(
        name="verify",
        trials=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        per_class=pd.DataFrame(per_class),
        axes=axes,
        overrides={t.trial_id: set(t.overrides) for t in trials},
    )


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Trial], Report]:
    trials = make_trials(sweep=SWEEP)
    return trials, write_report(sweep_of(trials), tmp_path_factory.mktemp("report"))


def test_a_right_report_passes(drawn: tuple[list[Trial], Report]) -> None:
    trials, report = drawn
    ids = [t.trial_id for t in trials]
    assert {"curves:grid:train.optimizer.lr", "curves:grid:train.batch_size"} <= set(report.plots)
    assert study_problems(trials, set(ids), report.plots) == []
    pngs = sorted(p.path.name for p in report.plots.values())
    assert page_problems(report.page.read_text(), pngs, ids) == []
    assert summary_problems(report.table, ("best_train_acc", "best_train_acc_epoch")) == []


def test_missing_lines_rows_and_figures_are_named(drawn: tuple[list[Trial], Report]) -> None:
    trials, report = drawn
    ran = {t.trial_id for t in trials}
    plots = dict(report.plots)
    curves = plots["curves:grid"]
    title, labels = curves.panels[1]
    assert title == "test accuracy" and len(labels) == 4
    panels = [curves.panels[0], (title, labels[:3]), *curves.panels[2:]]
    plots["curves:grid"] = type(curves)(curves.path, panels)
    del plots["per_class:single"]
    heat = plots["per_class:grid"]
    plots["per_class:grid"] = type(heat)(heat.path, [(heat.title, heat.panels[0][1][:2])], [], "")
    assert study_problems(trials, ran, plots) == [
        f"curves__grid.png: panels {[(t, len(ls)) for t, ls in panels]}, expected 4 lines",
        "per_class__grid.png: 2 rows x 0 classes, expected 4 trials",
        "study single: no per_class__single.png",
    ]
    # A trial that never ran an epoch is in no figure, and none is missed for it.
    assert study_problems(trials, ran - {"t004"}, report.plots) == []


def test_a_page_that_lacks_a_figure_or_fetches_one_is_named(
    drawn: tuple[list[Trial], Report],
) -> None:
    trials, report = drawn
    page = report.page.read_text()
    pngs = sorted(p.path.name for p in report.plots.values())
    first = re.search(r'<img src="data:image/png;base64,[^"]+"', page)
    assert first is not None
    broken = page.replace(first[0], '<img src="curves__grid.png"', 1)
    problems = page_problems(broken, pngs, [t.trial_id for t in trials])
    assert problems[0] == f"report.html: {len(pngs) - 1} figures embedded, {len(pngs)} logged"
    assert problems[1] == "report.html: fetches ['src=\"curves__grid.png\"']"
    assert page_problems(page, [*pngs, "extra.png"], ["t999"])[1:] == [
        "report.html: no figure ['extra.png']",
        "report.html: no row for ['t999']",
    ]
    assert page_problems(None, pngs, []) == ["report.html: not logged"]


def test_summary_numbers_missing_or_impossible_are_named(
    drawn: tuple[list[Trial], Report],
) -> None:
    table = drawn[1].table.copy()
    table.loc[table["trial_id"] == "t001", "best_train_acc"] = np.nan
    table.loc[table["trial_id"] == "t002", "best_epoch"] = 99
    assert summary_problems(table, ("best_train_acc", "no_such_column")) == [
        "summary.csv: best_train_acc empty for ['t001']",
        "summary.csv: no column no_such_column",
        "summary.csv: best_epoch outside 1..epochs for ['t002']",
    ]


def test_the_smoke_script_knows_each_smoke_file() -> None:
    """Every cpu_smoke file has the figures docs/experiments.md maps for its seed."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("smoke", root / "scripts" / "smoke.py")
    assert spec is not None and spec.loader is not None
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    stems = {p.stem for p in (root / "experiments" / "cpu_smoke").glob("*.yaml")}
    assert set(smoke.SEED_FILES) == stems
    assert smoke.not_raysweeps("raysweep: x\n[  0:01] t000 started\nWARNING ray: y") == [
        "WARNING ray: y"
    ]
