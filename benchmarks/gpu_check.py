"""The GPU checks, one JSON line per measurement (run through benchmarks/gpu_check.sh).

    .venv/bin/python benchmarks/gpu_check.py epoch [--dry]   # one ResNet-18 epoch, CIFAR-10 size
    .venv/bin/python benchmarks/gpu_check.py pack [--dry]    # 4 trials on one GPU vs one by one
    .venv/bin/python benchmarks/gpu_check.py smoke [--dry]   # seed000's smoke twin, synthetic
    .venv/bin/python benchmarks/gpu_check.py all [--dry]     # loop.py's check, then the three

`all` (what gpu_check.sh runs) does them in one process: torch, CUDA and raysweep start once.

`--dry` (or RAYSWEEP_GPU_CHECK_DRY=1): tiny sizes on the CPU, to check the script end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import RAYSWEEP, ROOT, timed_run, write_spec

from raysweep.config import TrialConfig
from raysweep.data import ImageData
from raysweep.train import WorkerEnv, train_trial

SMOKE = ROOT / "experiments" / "cpu_smoke" / "seed000_alexnet_vgg_fashion.yaml"


def emit(check: str, **fields: Any) -> None:
    """One measurement as one JSON line."""
    print(json.dumps({"check": check, **fields}), flush=True)


def synthetic(n: int, n_test: int, side: int = 32) -> ImageData:
    """Random uint8 images of CIFAR-10's shape."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n + n_test, 3, side, side), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n + n_test,), generator=g)
    classes = [str(i) for i in range(10)]
    stats = ((0.5,) * 3, (0.25,) * 3)
    return ImageData(x[:n], y[:n], x[n:], y[n:], classes, *stats, "synthetic")


def epoch_check(dry: bool) -> None:
    """One ResNet-18 epoch on CIFAR-10-sized data after a warm-up epoch (seeds: 12 s, A100)."""
    device = "cpu" if dry else "cuda"
    n, n_test, model = (64, 32, "lenet") if dry else (50_000, 10_000, "resnet18")
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "synthetic"},
            "model": {"name": model},
            "train": {"epochs": 2, "batch_size": 16 if dry else 128, "augment": ["crop", "flip"]},
        }
    )
    epochs: list[dict[str, Any]] = []
    train_trial(
        config,
        WorkerEnv(device=torch.device(device)),
        lambda m, s: epochs.append(m),
        data=synthetic(n, n_test),
    )
    last = epochs[-1]
    emit(
        "epoch",
        model=model,
        device=device,
        images=n,
        epoch_time_s=round(last["epoch_time_s"], 2),
        images_per_s=round(last["images_per_s"], 1),
        reference_a100_s=12.0,
    )


def pack_specs(dry: bool, cache: Path) -> dict[str, dict[str, Any]]:
    """The same 4 small trials, packed on one GPU (0.25 each) and one after another."""
    base = {
        "dataset": {
            "name": "synthetic",
            "num_train": 256 if dry else 8192,
            "cache_dir": str(cache),
        },
        "model": {"name": "lenet"},
        "train": {"epochs": 1 if dry else 3, "batch_size": 64, "log_model": False},
        "sweep": {"axes": {"train.seed": [0, 1] if dry else [0, 1, 2, 3]}},
    }
    gpus = {"packed": 0.25, "serial": 1.0}
    specs = {}
    for mode, share in gpus.items():
        resources = {"cpus_per_worker": 1, "gpus_per_worker": 0 if dry else share}
        if mode == "serial":
            resources["max_concurrent"] = 1
        specs[mode] = {**base, "name": f"gpu-check-{mode}", "resources": resources}
    return {"packed": specs["packed"]} if dry else specs


def pack_check(dry: bool) -> None:
    """Wall time of the packed sweep vs the serial one (ratio < 1: packing pays)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        walls = {}
        for mode, spec in pack_specs(dry, work / "cache").items():
            wall, proc = timed_run(write_spec(work, spec, f"{mode}.yaml"), work)
            if proc.returncode != 0:
                raise SystemExit(
                    f"{mode} sweep failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
                )
            walls[mode] = round(wall, 1)
    ratio = round(walls["packed"] / walls["serial"], 3) if "serial" in walls else None
    emit(
        "pack",
        trials=len(pack_specs(dry, Path("."))["packed"]["sweep"]["axes"]["train.seed"]),
        wall_s=walls,
        packed_over_serial=ratio,
    )


def smoke_check(dry: bool) -> None:
    """seed000's CPU smoke twin on synthetic 28x28 data, end to end through `raysweep run`.

    Dry: `raysweep plan` of it with the same overrides (the dry mode runs one real sweep
    only, the pack check's)."""
    sets = ["dataset.name=synthetic", "dataset.image_size=28", "dataset.channels=1"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets.append(f"dataset.cache_dir={work / 'cache'}")
        extra = [arg for s in sets for arg in ("--set", s)]
        if dry:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(RAYSWEEP), "plan", str(SMOKE), "--json", *extra],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            trials = json.loads(proc.stdout)["count"] if proc.returncode == 0 else None
        else:
            wall, proc = timed_run(SMOKE, work, *extra)
            trials = None
    emit(
        "smoke",
        spec=SMOKE.name,
        mode="plan" if dry else "run",
        trials=trials,
        wall_s=round(wall, 1),
        exit_code=proc.returncode,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])


def loop_check(dry: bool) -> None:
    """benchmarks/loop.py: raysweep's loop vs a plain one (LeNet and ResNet-18 on the GPU)."""
    import loop

    loop.main(
        ["--dry", "--device", "cpu"]
        if dry
        else ["--device", "cuda", "--models", "lenet", "resnet18"]
    )


CHECKS = {"loop": loop_check, "epoch": epoch_check, "pack": pack_check, "smoke": smoke_check}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("check", choices=[*CHECKS, "all"])
    parser.add_argument("--dry", action="store_true")
    args = parser.parse_args()
    dry = args.dry or os.environ.get("RAYSWEEP_GPU_CHECK_DRY") == "1"
    for name in CHECKS if args.check == "all" else [args.check]:
        t0 = time.perf_counter()
        CHECKS[name](dry)
        print(f"# {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        if torch.cuda.is_available():  # the next check's trials share this GPU
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
