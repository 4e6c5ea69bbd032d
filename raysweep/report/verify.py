"""What a sweep's logged report must hold, checked against its plan (scripts/smoke.py, tests).

`check_report` reads the sweep's parent run in MLflow and returns what is wrong with its report:
- `summary.csv` has one row per planned trial, with the per-trial numbers the seed reports give
  (the best value and epoch of test/train accuracy and loss, `duration_s`, `num_params`) filled
  in for every trial that ran an epoch (and did not diverge: it has no finite loss);
- every study of the plan has its curves figure (train and test accuracy and loss), with one
  line per configuration of the study that ran, and its per-class accuracy heatmap, with a row
  per such trial; a study that varies several factors has a curves figure per factor; the
  test-accuracy figure of the whole sweep has a line per trial that ran;
- `report.html` embeds every figure logged (as `data:` URIs: nothing to fetch) and lists every
  trial;
- the files `Promise` names (what docs/experiments.md says a seed's report holds) are there,
  the columns it names are filled, and the files it says are not drawn are not.
The figures' series are read from the report rebuilt from MLflow the way `raysweep report`
builds it (each figure's `PlotInfo` names what it drew), not from pixels; the figures logged on
the run must be exactly the rebuilt ones.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from raysweep.report.build import PAGE_FILE, write_report
from raysweep.report.figures import PLOT_FILES, file_part
from raysweep.report.plotkit import PlotInfo
from raysweep.report.read import read_sweep
from raysweep.report.store import download_text, find_parent, open_store
from raysweep.report.studies import ALL
from raysweep.report.tables import SEED_AXIS

if TYPE_CHECKING:
    from raysweep.plan import Trial

SUMMARY_FILE = "summary.csv"
# Filled for every trial that ran an epoch: seed 004's best train and test values with their
# epochs, seed 001's time, seed 003's and 004's parameter counts.
TRIAL_COLUMNS = (
    "best_test_acc",
    "best_epoch",
    "best_train_acc",
    "best_train_acc_epoch",
    "best_test_loss",
    "best_test_loss_epoch",
    "best_train_loss",
    "best_train_loss_epoch",
    "duration_s",
    "num_params",
)
TEST_PANEL = "test accuracy"


@dataclass(frozen=True)
class Promise:
    """What a documented report holds beyond the rules every report follows: figure `files`
    that must be logged, `absent` ones that must not, summary `columns` filled for every trial
    that ran, and `trial_files` every such trial's own run must have (its confusion matrix,
    first-layer kernels, ...)."""

    files: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    trial_files: tuple[str, ...] = ()


def check_report(
    tracking_uri: str, experiment: str, trials: list[Trial], promise: Promise | None = None
) -> tuple[dict[str, Any], list[str]]:
    """What the report logged on `experiment`'s newest sweep run holds (counts), and what is
    wrong with it against the planned `trials` and the `promise`."""
    store = open_store(experiment, tracking_uri)
    parent = find_parent(store)
    pid = parent.info.run_id
    logged = {a.path for a in store.client.list_artifacts(pid)}
    pngs = sorted(a for a in logged if a.endswith(".png"))
    promise = promise or Promise()
    problems: list[str] = []
    summary = _read_summary(store, pid, problems)
    if summary is None:
        return {"figures": len(pngs)}, problems
    planned = sorted(t.trial_id for t in trials)
    if sorted(summary["trial_id"]) != planned:
        problems.append(f"{SUMMARY_FILE}: trials {sorted(summary['trial_id'])} != {planned}")
    if "epochs" not in summary:
        return {"summary_rows": len(summary)}, [*problems, f"{SUMMARY_FILE}: no column epochs"]
    ran = summary[pd.to_numeric(summary["epochs"], errors="coerce").fillna(0) > 0]
    # A diverged trial's losses are not finite: its best loss is rightly empty.
    problems += summary_problems(
        ran[ran["status"] != "diverged"], (*TRIAL_COLUMNS, *promise.columns)
    )
    sweep = read_sweep(tracking_uri, experiment, pid)
    with tempfile.TemporaryDirectory() as tmp:
        plots = write_report(sweep, Path(tmp)).plots
    drawn = sorted(p.path.name for p in plots.values())
    if drawn != pngs:
        problems.append(f"figures logged {pngs} != drawn from MLflow now {drawn}")
    ran_ids = set(ran["trial_id"])
    problems += study_problems(trials, ran_ids, plots)
    overview = plots.get("curves")
    if ran_ids and (overview is None or overview.series != len(ran_ids)):
        problems.append(f"{PLOT_FILES['curves']}: not one line per trial that ran")
    problems += [f"{f}: not logged" for f in promise.files if f not in logged]
    problems += [f"{f}: logged, but not promised" for f in promise.absent if f in logged]
    problems += page_problems(download_text(store, pid, PAGE_FILE), pngs, planned)
    runs = dict(zip(sweep.trials["trial_id"], sweep.trials["run_id"], strict=True))
    for trial_id in sorted(ran_ids) if promise.trial_files else []:
        have = {a.path for a in store.client.list_artifacts(runs[trial_id])}
        if missing := [f for f in promise.trial_files if f not in have]:
            problems.append(f"{trial_id}'s run lacks {missing}")
    return {"figures": len(pngs), "summary_rows": len(summary)}, problems


def _read_summary(store: Any, run_id: str, problems: list[str]) -> pd.DataFrame | None:
    text = download_text(store, run_id, SUMMARY_FILE)
    if text is None:
        problems.append(f"{SUMMARY_FILE}: not logged")
        return None
    return pd.read_csv(io.StringIO(text), dtype={"trial_id": str})


def summary_problems(ran: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """What is missing from the summary rows of the trials that ran."""
    problems = []
    for column in dict.fromkeys(columns):
        if column not in ran.columns:
            problems.append(f"{SUMMARY_FILE}: no column {column}")
        elif missing := sorted(ran.loc[ran[column].isna(), "trial_id"]):
            problems.append(f"{SUMMARY_FILE}: {column} empty for {missing}")
    if {"best_epoch", "epochs"} <= set(ran.columns):
        bad = ran[(ran["best_epoch"] < 1) | (ran["best_epoch"] > ran["epochs"])]
        if len(bad):
            problems.append(
                f"{SUMMARY_FILE}: best_epoch outside 1..epochs for {list(bad.trial_id)}"
            )
    return problems


def _configuration(trial: Trial) -> str:
    """A trial's configuration: what the sweep set for it, but its seed (repeats are one line)."""
    return json.dumps(
        {k: v for k, v in trial.overrides.items() if k != SEED_AXIS}, sort_keys=True, default=str
    )


def _panel(info: PlotInfo, name: str) -> list[str]:
    return next((labels for title, labels in info.panels if title == name), [])


def study_problems(trials: list[Trial], ran: set[str], plots: dict[str, PlotInfo]) -> list[str]:
    """What is wrong with each study's figures: its curves (four panels; in test accuracy, a
    line per configuration that ran), its per-class heatmap (a row per trial that ran, a
    column per class) and its per-factor figures (at least two lines each)."""
    studies: dict[str, list[Trial]] = {}
    for trial in trials:
        for name in trial.studies or (ALL,):
            studies.setdefault(name, []).append(trial)
    problems = []
    for name, members in studies.items():
        done = [t for t in members if t.trial_id in ran]
        if not done:
            continue
        curves = plots.get(f"curves:{name}")
        configs = len({_configuration(t) for t in done})
        if curves is None or curves.path.name != f"curves__{file_part(name)}.png":
            problems.append(f"study {name}: no curves__{file_part(name)}.png")
        elif len(curves.panels) != 4 or len(_panel(curves, TEST_PANEL)) != configs:
            shown = [(title, len(labels)) for title, labels in curves.panels]
            problems.append(f"{curves.path.name}: panels {shown}, expected {configs} lines")
        heat = plots.get(f"per_class:{name}")
        if heat is None:
            problems.append(f"study {name}: no per_class__{file_part(name)}.png")
        elif len(heat.panels[0][1]) != len(done) or len(heat.columns) < 2:
            problems.append(
                f"{heat.path.name}: {len(heat.panels[0][1])} rows x {len(heat.columns)} classes, "
                f"expected {len(done)} trials"
            )
        for key, info in plots.items():
            if key.startswith(f"curves:{name}:") and len(_panel(info, TEST_PANEL)) < 2:
                problems.append(f"{info.path.name}: fewer than 2 lines for its factor")
    return problems


def page_problems(page: str | None, pngs: list[str], trials: list[str]) -> list[str]:
    """report.html: every logged figure embedded, nothing fetched, every trial listed."""
    if page is None:
        return [f"{PAGE_FILE}: not logged"]
    problems = []
    embedded = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    if len(embedded) != len(pngs):
        problems.append(f"{PAGE_FILE}: {len(embedded)} figures embedded, {len(pngs)} logged")
    if missing := [p for p in pngs if f"<figcaption>{p}" not in page]:
        problems.append(f"{PAGE_FILE}: no figure {missing}")
    if fetched := re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', page):
        problems.append(f"{PAGE_FILE}: fetches {fetched[:3]}")
    if absent := [t for t in trials if f">{t}<" not in page]:
        problems.append(f"{PAGE_FILE}: no row for {absent}")
    return problems
