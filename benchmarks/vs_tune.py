"""Wall time of `raysweep run` vs the Ray Tune script a user would write by hand, same trials.

The hand-written side: a function trainable (plain PyTorch loop, a checkpoint per epoch),
`reuse_actors=True`, `ray.air.integrations.mlflow.MLflowLoggerCallback`, 2 trials at a time, 1
CPU each, `ray.init(num_cpus=2, include_dashboard=False)` (`--hand-dashboard`: Ray's default,
the dashboard on). Both train the same 8 trials (LeNet on digits at 32x32, 4 epochs, batch 64,
Adam lr {3e-3, 1e-3} x seed 0..3, 1 torch thread per trial), each run as its own process timed
from the outside (interpreter, imports, Ray's start and stop included), from a decoded digits
cache, into a new MLflow SQLite store and checkpoint directory of its own. raysweep does more
per trial (logs the model, the confusion matrix, per-step losses; the end-of-sweep report).

`--rounds N` runs both sides N times, alternating which goes first; each side's best is kept.
Prints one JSON line: ratio = raysweep's best / the hand-written script's best (< 1: raysweep
is faster), and every wall time. Takes about 40 s a round on 2 cores.

    .venv/bin/python benchmarks/vs_tune.py [--epochs 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

from _common import timed_run, write_spec

SPEC = {
    "name": "bench-vs-tune",
    "dataset": {"name": "digits", "image_size": 32},
    "model": {"name": "lenet"},
    "train": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1.0e-3}},
    "sweep": {"axes": {"train.optimizer.lr": [3e-3, 1e-3], "train.seed": [0, 1, 2, 3]}},
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent": 2},
}


def hand_grid() -> list[tuple[float, int]]:
    """(lr, seed) of the 8 trials, as the hand-written script lists them."""
    return list(product([3e-3, 1e-3], [0, 1, 2, 3]))


def hand_trainable(config: dict[str, Any]) -> None:
    """The function trainable a person writes: load, train, evaluate, report, checkpoint."""
    import torch
    import torch.nn.functional as F
    from ray import tune

    from raysweep.data import load_dataset
    from raysweep.models import create_model
    from raysweep.sections import DatasetSpec

    torch.set_num_threads(1)
    torch.manual_seed(config["seed"])
    data = load_dataset(DatasetSpec(name="digits", image_size=32, cache_dir=config["cache"]))
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    model = create_model("lenet", in_channels=1, num_classes=10, image_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    x, y = data.x_train, data.y_train
    for epoch in range(config["epochs"]):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x) // 64 * 64, 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model((x[idx].float() / 255 - mean) / std), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model((data.x_test.float() / 255 - mean) / std)
            acc = (logits.argmax(1) == data.y_test).float().mean().item()
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, f"{tmp}/ckpt.pt")
            tune.report(
                {"epoch": epoch + 1, "test_acc": acc, "train_loss": loss.item()},
                checkpoint=tune.Checkpoint.from_directory(tmp),
            )


def warm_cache(cache: Path) -> None:
    """Decode digits into the cache both sides read, so neither pays for it."""
    from raysweep.data import load_dataset
    from raysweep.sections import DatasetSpec

    load_dataset(DatasetSpec(name="digits", image_size=32, cache_dir=str(cache)))


def hand_written(work: Path, cache: Path, epochs: int, dashboard: bool = False) -> float:
    """Wall seconds of the hand-written Tune run (Ray's start included)."""
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    t0 = time.perf_counter()
    ray.init(num_cpus=2, **({} if dashboard else {"include_dashboard": False}))
    try:
        lrs = sorted({lr for lr, _ in hand_grid()}, reverse=True)
        seeds = sorted({seed for _, seed in hand_grid()})
        tuner = tune.Tuner(
            tune.with_resources(hand_trainable, {"CPU": 1}),
            param_space={
                "lr": tune.grid_search(lrs),
                "seed": tune.grid_search(seeds),
                "epochs": epochs,
                "cache": str(cache),
            },
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=2),
            run_config=tune.RunConfig(
                storage_path=str(work / "hand-ray"),
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{work / 'hand-mlflow.db'}",
                        experiment_name="hand-written",
                    )
                ],
                verbose=0,
            ),
        )
        results = tuner.fit()
        assert not results.errors, results.errors
    finally:
        ray.shutdown()
    return time.perf_counter() - t0


def run_raysweep(work: Path, spec: dict) -> float:
    """Wall seconds of `raysweep run` of `spec` in `work` (a new store and storage)."""
    wall, proc = timed_run(write_spec(work, spec), work)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return wall


def run_hand(work: Path, cache: Path, epochs: int, dashboard: bool) -> float:
    """Wall seconds of the hand-written script in its own process, in `work`."""
    hand = [sys.executable, __file__, "--hand-only", str(work), "--cache", str(cache)]
    hand += ["--epochs", str(epochs), *(["--hand-dashboard"] if dashboard else [])]
    t0 = time.perf_counter()
    subprocess.run(hand, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=SPEC["train"]["epochs"])
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side (default 1)")
    parser.add_argument(
        "--hand-dashboard", action="store_true", help="the hand-written side with Ray's dashboard"
    )
    parser.add_argument("--hand-only", metavar="WORK", help="(internal) the hand-written run")
    parser.add_argument("--cache", metavar="DIR", help="(internal) the decoded digits")
    args = parser.parse_args()
    if args.hand_only:
        hand_written(Path(args.hand_only), Path(args.cache), args.epochs, args.hand_dashboard)
        return
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": args.epochs}}
    walls: dict[str, list[float]] = {"raysweep": [], "hand": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        spec["dataset"] = {**spec["dataset"], "cache_dir": str(cache)}
        warm_cache(cache)
        for round_ in range(args.rounds):
            order = ["raysweep", "hand"] if round_ % 2 == 0 else ["hand", "raysweep"]
            for side in order:
                work = Path(tmp) / f"{side}-{round_}"
                work.mkdir()
                if side == "raysweep":
                    walls[side].append(run_raysweep(work, spec))
                else:
                    walls[side].append(run_hand(work, cache, args.epochs, args.hand_dashboard))
    best = {side: min(times) for side, times in walls.items()}
    print(
        json.dumps(
            {
                "benchmark": "vs_tune",
                "trials": len(hand_grid()),
                "hand_dashboard": args.hand_dashboard,
                "raysweep_wall_s": round(best["raysweep"], 1),
                "hand_written_wall_s": round(best["hand"], 1),
                "ratio": round(best["raysweep"] / best["hand"], 3),
                "raysweep_walls_s": [round(t, 1) for t in walls["raysweep"]],
                "hand_written_walls_s": [round(t, 1) for t in walls["hand"]],
            }
        )
    )


if __name__ == "__main__":
    main()
