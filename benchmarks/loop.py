"""Images/s of raysweep's training loop vs a plain PyTorch loop doing the same work.

Same model, batch size, data (uint8 on the device, normalized per batch), optimizer, device,
precision and memory format (on CUDA both sides run bf16 autocast where the GPU supports it and
channels_last, raysweep's defaults; the backend flags are set the same way before every run),
measured side by side in one process; ratio = raysweep / plain (target >= 0.95). Each epoch is
at least `--steps` batches (on CPU the small default sizes). Prints one JSON object as its last
line. On a GPU at batch 128 both loops are bound by kernel launches from the host, so the ratio
moves with the host CPU's noise (0.83-1.03 on an H200: docs/performance.md, "GPU").

    .venv/bin/python benchmarks/loop.py [--models lenet basic_cnn resnet18] [--device cuda]
        [--steps 50] [--epochs 3] [--dry]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from raysweep.config import TrialConfig
from raysweep.data import ImageData
from raysweep.device import autocast, configure_backends
from raysweep.models import create_model
from raysweep.train import WorkerEnv, train_trial

SIZES = {"lenet": 4096, "basic_cnn": 2048, "resnet18": 512}  # CPU: images per epoch
GPU_STEPS = 50  # CUDA: batches per timed epoch (4 steps of ResNet-18 time launch overheads)


def images_per_epoch(model: str, device: str, batch: int, steps: int | None) -> int:
    """Train images per epoch: the CPU sizes, or `steps` full batches (CUDA's default 50)."""
    if steps is None and device.startswith("cuda"):
        steps = GPU_STEPS
    return batch * steps if steps else SIZES.get(model, 2048)


def synthetic(n: int, device: str) -> ImageData:
    """Random uint8 images (the loops' speed does not depend on what the pixels are)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return ImageData(
        x,
        y,
        x[:256],
        y[:256],
        [str(i) for i in range(10)],
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        "synthetic",
    )


def raysweep_rate(model: str, data: ImageData, batch: int, device: str, epochs: int) -> float:
    """images/s of the last epoch of `train_trial` (the first epochs warm up)."""
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "synthetic"},
            "model": {"name": model},
            "train": {
                "epochs": epochs,
                "batch_size": batch,
                "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            },
        }
    )
    rates: list[float] = []
    train_trial(
        config,
        WorkerEnv(device=torch.device(device)),
        lambda m, s: rates.append(m["images_per_s"]),
        data=data,
    )
    return rates[-1]


def plain_rate(model_name: str, data: ImageData, batch: int, device: str, epochs: int) -> float:
    """The loop a person writes by hand: same work, nothing else."""
    dev = torch.device(device)
    amp = configure_backends(dev, bf16=True)  # what train_trial sets: same flags, same work
    channels_last = dev.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = create_model(model_name, in_channels=3, num_classes=10, image_size=32)
    model = model.to(dev, memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1)
    n = len(x) // batch * batch
    rate = 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), device=dev)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            xb = ((x[idx].float() / 255 - mean) / std).contiguous(memory_format=memory_format)
            with autocast(dev, amp):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rate = n / (time.perf_counter() - t0)
    return rate


def main(argv: list[str] | None = None) -> None:
    """Measure and print (`argv`: the command line's arguments, by default sys.argv's)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(SIZES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch")
    parser.add_argument("--dry", action="store_true", help="tiny sizes: checks the script")
    args = parser.parse_args(argv)
    if args.dry:
        args.models, args.batch_size, args.epochs, args.steps = ["lenet"], 16, 2, 2
    results = {}
    for name in args.models:
        n = images_per_epoch(name, args.device, args.batch_size, args.steps)
        data = synthetic(n, args.device)
        plain = plain_rate(name, data, args.batch_size, args.device, args.epochs)
        ours = raysweep_rate(name, data, args.batch_size, args.device, args.epochs)
        plain_again = plain_rate(name, data, args.batch_size, args.device, args.epochs)
        baseline = max(plain, plain_again)  # the better of two runs: noise only helps plain
        results[name] = {
            "images_per_epoch": n,
            "raysweep_images_per_s": round(ours, 1),
            "plain_images_per_s": round(baseline, 1),
            "ratio": round(ours / baseline, 3),
        }
        print(name, results[name], flush=True)
    print(
        json.dumps(
            {
                "benchmark": "loop",
                "device": args.device,
                "batch_size": args.batch_size,
                "epochs": args.epochs,
                "dry": args.dry,
                "threads": torch.get_num_threads(),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
