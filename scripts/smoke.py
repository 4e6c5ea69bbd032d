"""Run sweep files end to end and check what MLflow holds afterwards (CI: experiments/cpu_smoke).

For each file: `raysweep run` must exit 0, and the sweep's parent run must hold exactly one child
run per planned trial (same trial ids, params equal to the planned config), none failed, killed
or still running, plus the report docs/experiments.md promises for that seed
(`raysweep.report.verify`: the summary table's row and numbers per trial, each study's curves
and per-class figures holding a line or row per trial, report.html embedding every figure, and
the seed's own figures and columns, `SEED_FILES` and `SEED_COLUMNS`), and nothing on the
terminal but raysweep's own lines (`not_raysweeps`). Prints one JSON line per file and a final JSON
summary; exits 1 if any file failed.

    .venv/bin/python scripts/smoke.py [--jobs N] [SWEEP.yaml ...]   # default: cpu_smoke/*.yaml

Two files run at a time by default (`--jobs`): a sweep leaves the cores idle while its Ray and
its trials' processes start, and the other sweep uses them (each has its own local Ray, MLflow
store and temp directory). What MLflow holds is read one file at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAYSWEEP = ROOT / ".venv" / "bin" / "raysweep"
BAD_STATUSES = {"failed", "killed", "running", "not started"}
PARENT_ARTIFACTS = {
    "sweep.yaml",
    "plan.json",
    "summary.parquet",
    "summary.csv",
    "summary.md",
    "report.html",
}
# Every trial's own files (docs/analysis.md; seed 003's confusion matrix and seed 003/004's
# first-layer kernels are among them).
TRIAL_FILES = (
    "confusion_matrix.png",
    "per_class_accuracy.json",
    "steps.parquet",
    "first_layer_kernels.png",
)
# What docs/experiments.md maps each seed report's figures and tables to, as the CPU smoke file
# of that seed can draw it (its studies keep their names; some lose axes: no per-factor figure
# where a study's one axis has one value, e.g. seed 003's VGG-A +- BN at one learning rate).
SEED_FILES = {
    "seed000_alexnet_vgg_fashion": (
        "curves__fig3_sgd_lr.png",
        "curves__fig3_sgd_lr__train.optimizer.lr.png",
        "curves__fig3_sgd_lr__train.epochs.png",
        "curves__fig6_adam_dropout.png",
        "curves__fig11_best_adam.png",
        "curves__fig12_model_loss_adam.png",
        "per_class__fig12_model_loss_adam.png",
        "test_acc_curves.png",
    ),
    "seed001_lenet_resnet_cifar10": (
        "curves__task1_baseline.png",
        "curves__task3_lenet_3configs.png",
        "curves__task3_lenet_7configs_batch_size.png",
        "curves__task2_regularization.png",
        "curves__task4_resnet18_4configs.png",
    ),
    "seed002_lenet_optimizers": (
        "curves__fig2_fig3_optimizers.png",
        "curves__fig4_fig5_learning_rate.png",
        "loss_landscape.png",
    ),
    "seed003_cnn_family_vgg_bn": (
        "accuracy_vs_cost.png",
        "curves__cnn_family_cross_entropy.png",
        "curves__cnn_family_improved_label_smoothing.png",
        "curves__vgg_a_batchnorm_loss_landscape.png",
        "test_acc_curves.png",
        "loss_landscape.png",
    ),
    "seed004_nn_ablation": tuple(
        f"curves__main__{axis}.png"
        for axis in (
            "model",
            "train.loss.name",
            "train.optimizer.weight_decay",
            "model.activation",
            "train.optimizer.name",
            "model.batchnorm",
            "model.dropout",
        )
    ),
}
SEED_COLUMNS = {
    "seed000_alexnet_vgg_fashion": ("test_acc", "test_loss", "gap"),
    "seed001_lenet_resnet_cifar10": ("test_acc", "duration_s"),
    "seed003_cnn_family_vgg_bn": ("num_params", "best_test_acc", "duration_s"),
    "seed004_nn_ablation": (
        "best_train_acc",
        "best_train_acc_epoch",
        "best_test_acc",
        "best_epoch",
        "num_params",
    ),
}
# Seed 004 sweeps no learning rate: docs/experiments.md says no band is drawn.
SEED_ABSENT = {"seed004_nn_ablation": ("loss_landscape.png",)}


def promise(spec: Path):
    """What docs/experiments.md says the report of the seed of `spec` (by its file name) holds."""
    from raysweep.report.verify import Promise

    stem = spec.stem
    return Promise(
        files=SEED_FILES.get(stem, ()),
        absent=SEED_ABSENT.get(stem, ()),
        columns=SEED_COLUMNS.get(stem, ()),
        trial_files=TRIAL_FILES,
    )


def inspect(spec: Path, uri: str) -> tuple[dict, list[str]]:
    """What MLflow at `uri` holds for the sweep in `spec`, and what is wrong with it."""
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_spec
    from raysweep.plan import expand
    from raysweep.report.export import export_table
    from raysweep.report.store import find_parent, open_store
    from raysweep.report.verify import check_report
    from raysweep.tracking import trial_params

    sweep, _ = load_spec(spec, ())
    trials = expand(sweep, str(spec))
    planned = sorted(t.trial_id for t in trials)
    found: dict = {"planned": len(planned)}
    problems = []
    try:
        table = export_table(uri, sweep.name)
        runs = sorted(table["trial_id"])
        found.update(runs=len(runs), statuses=sorted(set(table["status"])))
        if runs != planned:
            problems.append(f"trial runs {runs} != planned {planned}")
        bad = [f"{t}:{s}" for t, s in zip(table["trial_id"], table["status"], strict=True)]
        if bad := sorted(b for b in bad if b.split(":", 1)[1] in BAD_STATUSES):
            problems.append(f"trials not finished: {bad}")
        client = MlflowClient(uri)
        # Each trial's run holds exactly the config the plan resolved for it (ofat/grid contents).
        run_ids = dict(zip(table["trial_id"], table["run_id"], strict=True))
        for trial in trials:
            if trial.trial_id in run_ids:
                logged = client.get_run(run_ids[trial.trial_id]).data.params
                wanted = trial_params(trial.config.model_dump(mode="json"))
                if diff := sorted(k for k in wanted if logged.get(k) != wanted[k]):
                    problems.append(f"{trial.trial_id}: params differ from the plan: {diff}")
        parent = find_parent(open_store(sweep.name, uri))
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        if missing := PARENT_ARTIFACTS - artifacts:
            problems.append(f"parent run lacks {sorted(missing)}")
        if not any(a.endswith(".png") for a in artifacts):
            problems.append("parent run has no plots")
        report, wrong = check_report(uri, sweep.name, trials, promise(spec))
        found.update(report)
        problems += wrong
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other files still run
        problems.append(f"reading MLflow: {exc}")
    return found, problems


def not_raysweeps(output: str) -> list[str]:
    """The lines of a run's terminal output that raysweep did not write: its own say
    `raysweep: ...`, are event lines `[m:ss] ...` or the end-of-run table (header, trial rows);
    everything else belongs in the run's log file."""
    own = re.compile(r"raysweep: |\[ *\d+:\d\d\] |trial_id |t\d+ ")
    return [line for line in output.splitlines() if line and not own.match(line)]


_READING = threading.Lock()  # one file's MLflow store read at a time (one process, one client)


def check(spec: Path, work: Path) -> dict:
    """Run one sweep file in `work` and return what was found (`ok` says whether it passed)."""
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAYSWEEP_LOG_DIR": str(work / "logs")}
    t0 = time.time()
    proc = subprocess.run(
        [str(RAYSWEEP), "run", str(spec), "--tracking-uri", uri, "--storage", str(work / "ray")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    result: dict = {
        "file": str(spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec),
        "exit_code": proc.returncode,
        "wall_s": round(time.time() - t0, 1),
    }
    with _READING:
        found, problems = inspect(spec, uri)
    result.update(found)
    if proc.returncode != 0:
        problems.insert(0, f"exit code {proc.returncode}")
    if foreign := not_raysweeps(proc.stdout + proc.stderr):
        problems.append(f"lines on the terminal that are not raysweep's: {foreign[:5]}")
    result["ok"] = not problems
    if problems:
        result["problems"] = problems
        result["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
    return result


def _check_in_temp_dir(spec: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="raysweep-smoke-") as tmp:
        result = check(spec, Path(tmp))
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str]) -> int:
    """Check every file given (default: experiments/cpu_smoke/*.yaml), `--jobs` at a time."""
    parser = argparse.ArgumentParser(prog="smoke.py", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="sweeps at a time (default 2)")
    parser.add_argument("specs", nargs="*", type=Path, help="sweep files")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reading reports
    specs = [p.resolve() for p in args.specs] or sorted(
        (ROOT / "experiments/cpu_smoke").glob("*.yaml")
    )
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(_check_in_temp_dir, specs))
    failed = [r["file"] for r in results if not r["ok"]]
    print(
        json.dumps({"files": len(results), "failed": failed, "wall_s": round(time.time() - t0, 1)})
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
