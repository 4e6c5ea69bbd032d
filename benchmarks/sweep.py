"""Wall time of an 8-trial digits sweep through `raysweep run` vs the same 8 trainings run back
to back in one plain process, divided by the concurrency the sweep had.

ratio = sweep wall / (plain total / concurrency) (target <= 1.3 on the 2-core machine); the
per-trial fixed cost (Ray start, worker group, MLflow logging) is reported separately.
Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import timed_run, write_spec

from raysweep.config import validate_spec
from raysweep.plan import expand
from raysweep.train import WorkerEnv, train_trial

SPEC = {
    "name": "bench-sweep",
    "dataset": {"name": "digits", "image_size": 32},
    "model": {"name": "lenet"},
    "train": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1.0e-3}},
    "sweep": {"axes": {"train.optimizer.lr": [3e-3, 1e-3], "train.seed": [0, 1, 2, 3]}},
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
}


def plain_total(spec: dict) -> float:
    """The same trials trained one after another in this process (1 thread each, as a worker)."""
    torch.set_num_threads(1)
    trials = expand(validate_spec(spec))
    t0 = time.perf_counter()
    for trial in trials:
        train_trial(trial.config, WorkerEnv(), lambda m, s: None)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=SPEC["train"]["epochs"])
    args = parser.parse_args()
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": args.epochs}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec["dataset"] = {**spec["dataset"], "cache_dir": str(work / "cache")}
        path = write_spec(work, spec)
        plain_total(spec)  # decode and cache digits, warm the imports
        wall, proc = timed_run(path, work)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        plain = plain_total(spec)
    trials = len(expand(validate_spec(spec)))
    concurrency = min(trials, max(1, (torch.multiprocessing.cpu_count() or 1)))
    ideal = plain / concurrency
    fixed = (wall - ideal) / (trials / concurrency)
    print(
        json.dumps(
            {
                "benchmark": "sweep",
                "trials": trials,
                "concurrency": concurrency,
                "sweep_wall_s": round(wall, 1),
                "plain_total_s": round(plain, 1),
                "ideal_s": round(ideal, 1),
                "ratio": round(wall / ideal, 3),
                "fixed_cost_per_trial_s": round(fixed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
