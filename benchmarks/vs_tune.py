"""Wall time of `raysweep run` vs the Ray Tune script a user would write by hand, same trials.

The hand-written side: a function trainable (plain PyTorch loop, a checkpoint per epoch),
`reuse_actors=True`, `ray.air.integrations.mlflow.MLflowLoggerCallback`, 2 trials at a time, 1
CPU each. Both train the same 8 trials (LeNet on digits at 32x32, 4 epochs, batch 64, Adam lr
{3e-3, 1e-3} x seed 0..3), side by side in one run, each as its own process timed from the
outside (interpreter, imports and Ray's start included), the digits cache decoded beforehand.
Prints one JSON line: ratio = raysweep / hand-written (< 1: raysweep is faster). raysweep does
more per trial (logs the model, the confusion matrix, per-step losses, the end-of-sweep report).
Takes minutes on 2 cores.

    .venv/bin/python benchmarks/vs_tune.py [--epochs 4]
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


def warm_cache(work: Path) -> None:
    """Decode digits into the cache both sides read, so neither pays for it."""
    from raysweep.data import load_dataset
    from raysweep.sections import DatasetSpec

    load_dataset(DatasetSpec(name="digits", image_size=32, cache_dir=str(work / "cache")))


def hand_written(work: Path, epochs: int) -> float:
    """Wall seconds of the hand-written Tune run (Ray's start included)."""
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        lrs = sorted({lr for lr, _ in hand_grid()}, reverse=True)
        seeds = sorted({seed for _, seed in hand_grid()})
        tuner = tune.Tuner(
            tune.with_resources(hand_trainable, {"CPU": 1}),
            param_space={
                "lr": tune.grid_search(lrs),
                "seed": tune.grid_search(seeds),
                "epochs": epochs,
                "cache": str(work / "cache"),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=SPEC["train"]["epochs"])
    parser.add_argument("--hand-only", metavar="WORK", help="(internal) the hand-written run")
    args = parser.parse_args()
    if args.hand_only:
        hand_written(Path(args.hand_only), args.epochs)
        return
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": args.epochs}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec["dataset"] = {**spec["dataset"], "cache_dir": str(work / "cache")}
        warm_cache(work)
        sweep_wall, proc = timed_run(write_spec(work, spec), work)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
        t0 = time.perf_counter()
        hand = [sys.executable, __file__, "--hand-only", str(work), "--epochs", str(args.epochs)]
        subprocess.run(hand, check=True, capture_output=True)
        hand_wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "benchmark": "vs_tune",
                "trials": len(hand_grid()),
                "raysweep_wall_s": round(sweep_wall, 1),
                "hand_written_wall_s": round(hand_wall, 1),
                "ratio": round(sweep_wall / hand_wall, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
