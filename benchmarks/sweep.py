"""Wall time of an 8-trial digits sweep through `raysweep run` vs the same 8 trainings run back
to back in one plain process, divided by the concurrency the sweep had.

ratio = sweep wall / (plain total / concurrency) (target <= 1.3 on the 2-core machine). The
fixed costs are reported separately, from a second, 2-trial run of the same sweep: per sweep
(Python and Ray start, the end-of-run report) and per trial (its process or actor, MLflow
logging, checkpoints), in wall seconds with `concurrency` trials side by side. `--rounds N`
runs both sweeps N times and keeps each one's best. Prints one JSON object as its last line.
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
    parser.add_argument("--rounds", type=int, default=1, help="runs of each sweep; best kept")
    args = parser.parse_args()
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": args.epochs}}
    # The same sweep with one seed (2 trials): the difference is what 6 more trials cost.
    small = {**spec, "name": "bench-sweep-small"}
    small["sweep"] = {"axes": {**spec["sweep"]["axes"], "train.seed": [0]}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for s in (spec, small):
            s["dataset"] = {**s["dataset"], "cache_dir": str(work / "cache")}
        plain_total(spec)  # decode and cache digits, warm the imports
        walls: dict[int, float] = {}
        for round_ in range(args.rounds):
            for s in (small, spec):
                run_dir = work / f"{s['name']}-{round_}"  # a new MLflow store and storage
                run_dir.mkdir()
                wall, proc = timed_run(write_spec(run_dir, s), run_dir)
                if proc.returncode != 0:
                    raise SystemExit(proc.stdout + proc.stderr)
                count = len(expand(validate_spec(s)))
                walls[count] = min(wall, walls.get(count, wall))
        plain = plain_total(spec)
    trials = len(expand(validate_spec(spec)))
    few = min(walls)
    concurrency = min(trials, max(1, (torch.multiprocessing.cpu_count() or 1)))
    ideal = plain / concurrency
    per_trial_plain = plain / trials
    # Each extra wave of `concurrency` trials side by side costs one trial's training plus
    # the per-trial overhead; what the small sweep spends beyond its one wave is per sweep.
    per_wave = (walls[trials] - walls[few]) / ((trials - few) / concurrency)
    per_trial_fixed = per_wave - per_trial_plain
    per_sweep_fixed = walls[few] - (few / concurrency) * per_wave
    print(
        json.dumps(
            {
                "benchmark": "sweep",
                "trials": trials,
                "epochs": args.epochs,
                "concurrency": concurrency,
                "sweep_wall_s": round(walls[trials], 1),
                "plain_total_s": round(plain, 1),
                "ideal_s": round(ideal, 1),
                "ratio": round(walls[trials] / ideal, 3),
                f"sweep_wall_{few}_trials_s": round(walls[few], 1),
                "fixed_cost_per_sweep_s": round(per_sweep_fixed, 1),
                "fixed_cost_per_trial_s": round(per_trial_fixed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
