"""ASHA vs the same grid without it on digits: the fraction of epochs ASHA spends and the gap
between the two best test accuracies (targets: <= 40% of the epochs, gap <= 1 point).
Prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _common import timed_run, write_spec

SPEC = {
    "name": "bench-asha",
    "dataset": {"name": "digits", "image_size": 32},
    "model": {"name": "lenet"},
    "train": {"epochs": 9, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1.0e-3}},
    "sweep": {
        "axes": {"train.optimizer.lr": [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]},
        "metric": "test_acc",
    },
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
}


def epochs_and_best(uri: str, name: str) -> tuple[int, float]:
    """Epochs run over all trials and the best test accuracy, from MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    epochs = sum(len(client.get_metric_history(r.info.run_id, "test_acc")) for r in children)
    best = max(r.data.metrics.get("best_test_acc", 0.0) for r in children)
    return epochs, best


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, scheduler in (
            ("fifo", {"name": "fifo"}),
            ("asha", {"name": "asha", "grace_epochs": 1, "reduction_factor": 3}),
        ):
            spec = {
                **SPEC,
                "name": f"bench-{label}",
                "dataset": {**SPEC["dataset"], "cache_dir": str(work / "cache")},
                "sweep": {**SPEC["sweep"], "scheduler": scheduler},
            }
            wall, proc = timed_run(write_spec(work, spec, f"{label}.yaml"), work)
            if proc.returncode != 0:
                raise SystemExit(proc.stdout + proc.stderr)
            epochs, best = epochs_and_best(f"sqlite:///{work / 'mlflow.db'}", spec["name"])
            results[label] = {"wall_s": round(wall, 1), "epochs": epochs, "best_test_acc": best}
            print(label, results[label], flush=True)
    print(
        json.dumps(
            {
                "benchmark": "asha",
                **results,
                "epochs_fraction": round(results["asha"]["epochs"] / results["fifo"]["epochs"], 3),
                "best_gap_points": round(
                    100 * (results["fifo"]["best_test_acc"] - results["asha"]["best_test_acc"]), 2
                ),
                "ratio": round(results["asha"]["wall_s"] / results["fifo"]["wall_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
