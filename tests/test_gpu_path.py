"""The GPU path's logic, on CPU: driver check, backend flags, device choice, GPU release,
SyncBatchNorm, per-epoch reshuffling across ranks and checkpoint frequency."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from raysweep import device as device_module
from raysweep import train as train_module
from raysweep import trainables
from raysweep.config import TrialConfig
from raysweep.device import check_cuda, configure_backends, driver_problem, driver_version
from raysweep.records import RunSettings
from raysweep.resources import TrialResources
from raysweep.sections import ResourcesSpec
from raysweep.train import WorkerEnv, _epoch_order, _sync_bn, checkpoint_due
from raysweep.trainables import assigned_device

PROC_VERSION = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Thu Jan 16 00:03:00 UTC 2025\nGCC version:  gcc 13.3.0\n"
)


def test_driver_version_is_read_from_the_kernel_module(tmp_path: Path) -> None:
    proc = tmp_path / "version"
    proc.write_text(PROC_VERSION)
    assert driver_version(str(proc)) == (570, 86, 15)
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul\n")
    assert driver_version(str(proc)) == (580, 65, 6)
    assert driver_version(str(tmp_path / "missing")) is None


def test_an_old_driver_is_named_with_what_to_do() -> None:
    problem = driver_problem("13.2", (570, 86, 15), available=False)
    assert problem is not None
    assert "570.86.15" in problem and "R580+" in problem and "CUDA 13.2" in problem
    assert "cluster.yaml" in problem
    assert driver_problem("13.2", (580, 65, 6), available=True) is None
    assert driver_problem("12.8", (570, 86), available=True) is None
    assert "none found" in (driver_problem("13.2", None, available=False) or "")
    assert "CPU-only" in (driver_problem(None, None, available=False) or "")


def test_check_cuda_fails_at_worker_start_on_an_old_driver(monkeypatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "driver_version", lambda: (570, 86, 15))
    check_cuda(torch.device("cpu"))  # nothing to check on CPU
    with pytest.raises(RuntimeError, match=r"cuda:0.*R580.*570\.86\.15"):
        check_cuda(torch.device("cuda", 0))


@pytest.fixture
def restore_backends():
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.backends.cuda.matmul.allow_tf32 = saved[1]
    torch.backends.cudnn.allow_tf32 = saved[2]
    torch.set_float32_matmul_precision(saved[3])


@pytest.mark.parametrize("bf16_ok", [True, False])
def test_backend_flags_are_set_per_run(monkeypatch, restore_backends, bf16_ok, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    amp = configure_backends(torch.device("cuda", 0), bf16=True)
    assert amp is bf16_ok
    assert torch.backends.cudnn.benchmark is True
    # fp32 training (no bf16 support) gets TF32 matmuls; bf16 training keeps them exact
    assert torch.backends.cuda.matmul.allow_tf32 is (not bf16_ok)
    assert torch.get_float32_matmul_precision() == ("highest" if bf16_ok else "high")
    assert ("does not support bfloat16" in caplog.text) is (not bf16_ok)
    assert configure_backends(torch.device("cuda", 0), bf16=False) is False
    assert torch.backends.cuda.matmul.allow_tf32 is True
    # a CPU run after a GPU run in the same (reused) process: benchmark off again
    assert configure_backends(torch.device("cpu"), bf16=True) is False
    assert torch.backends.cudnn.benchmark is False


def test_the_device_is_the_gpu_ray_assigned() -> None:
    assert assigned_device([], None) == ("cpu", None)
    assert assigned_device(["3"], "3") == ("cuda", 0)  # Ray's mask: cuda:0 is GPU 3
    assert assigned_device([3], "1,3") == ("cuda", 1)
    assert assigned_device(["2"], None) == ("cuda", 2)  # no mask: the physical index
    with pytest.raises(RuntimeError, match="gpus_per_worker to 1 or less"):
        assigned_device(["0", "1"], "0,1")


def test_more_than_one_gpu_per_worker_is_refused() -> None:
    with pytest.raises(ValueError, match="a worker trains on one GPU"):
        ResourcesSpec(gpus_per_worker=2)
    assert ResourcesSpec(workers_per_trial=2, gpus_per_worker=1).gpus_per_worker == 1


class _Stop(Exception):
    """What Tune raises inside `report` when ASHA stops a trial."""


def test_a_stopped_inline_trial_releases_its_gpu(monkeypatch, tmp_path: Path) -> None:
    import ray
    from ray import tune

    calls: list[Any] = []
    context = types.SimpleNamespace(get_experiment_name=lambda: "exp", get_node_id=lambda: "n")
    monkeypatch.setattr(tune, "get_context", lambda: context)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: context)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: ["5"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    monkeypatch.setattr(device_module, "check_cuda", lambda device: calls.append(("check", device)))
    monkeypatch.setattr(
        trainables, "_share_gpu", lambda device, share: calls.append(("share", share))
    )
    monkeypatch.setattr(trainables, "_release_gpu", lambda device: calls.append(("free", device)))

    def stopped(config, env, report, resume=None):
        calls.append(("train", env.device))
        raise _Stop

    monkeypatch.setattr(train_module, "train_trial", stopped)
    trial = {"trial_id": "t000", "config": _config(tmp_path).model_dump(), "fingerprint": "f"}
    run: RunSettings = {"storage": str(tmp_path / "ray"), "cluster": {"CPU": 1.0, "GPU": 1.0}}
    with pytest.raises(_Stop):
        trainables.train_inline(trial, run, TrialResources(1, 1.0, 0.25, inline=True))
    cuda0 = torch.device("cuda", 0)
    assert calls == [("check", cuda0), ("share", 0.25), ("train", cuda0), ("free", cuda0)]


def test_share_gpu_caps_memory_only_for_fractional_gpus(monkeypatch) -> None:
    fractions: list[float] = []
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: fractions.append(f)
    )
    trainables._share_gpu(torch.device("cuda", 0), 0.25)
    trainables._share_gpu(torch.device("cuda", 0), 1.0)
    trainables._share_gpu(torch.device("cpu"), 0.5)
    assert fractions == [0.25]


def test_sync_bn_converts_only_when_distributed(monkeypatch) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    weight = model[1].weight
    two = WorkerEnv(rank=0, world_size=2)
    assert _sync_bn(model, two, enabled=True) is model  # torch.distributed not running
    monkeypatch.setattr(train_module, "_distributed", lambda env: env.world_size > 1)
    assert _sync_bn(model, two, enabled=False) is model
    assert _sync_bn(model, WorkerEnv(), enabled=True) is model
    synced = _sync_bn(model, two, enabled=True)
    assert isinstance(synced[1], nn.SyncBatchNorm)
    assert synced[1].weight is weight  # the optimizer's parameters are kept
    assert set(synced.state_dict()) == set(nn.Sequential(model[0], nn.BatchNorm2d(2)).state_dict())


def _config(tmp_path: Path, **train: Any) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {"name": "digits", "image_size": 32, "cache_dir": str(tmp_path / "c")},
            "model": {"name": "lenet"},
            "train": {"epochs": 2, "batch_size": 8, **train},
        }
    )


def _fake_trial(tmp_path: Path, rank: int, world: int, n: int = 12) -> Any:
    per_rank = n // world
    return types.SimpleNamespace(
        env=WorkerEnv(rank=rank, world_size=world),
        config=_config(tmp_path, seed=4),
        x_train=torch.zeros(per_rank * world),
        per_rank=per_rank,
    )


def test_ranks_take_disjoint_slices_of_a_fresh_permutation_each_epoch(tmp_path: Path) -> None:
    world, n = 3, 12
    gen = torch.Generator()
    orders = {
        epoch: [_epoch_order(_fake_trial(tmp_path, r, world, n), epoch, gen) for r in range(world)]
        for epoch in (0, 1)
    }
    for parts in orders.values():
        assert sorted(torch.cat(parts).tolist()) == list(range(n))  # a partition, each epoch
    assert any(
        set(a.tolist()) != set(b.tolist()) for a, b in zip(orders[0], orders[1], strict=True)
    )  # rank shards change between epochs
    again = _epoch_order(_fake_trial(tmp_path, 1, world, n), 0, torch.Generator())
    assert torch.equal(again, orders[0][1])  # seeded: the same on every rank, every resume


def test_one_worker_order_is_its_own_generators_permutation(tmp_path: Path) -> None:
    one = _fake_trial(tmp_path, 0, 1, 10)
    got = _epoch_order(one, 0, torch.Generator().manual_seed(7))
    assert torch.equal(got, torch.randperm(10, generator=torch.Generator().manual_seed(7)))


def test_checkpoint_every_n_epochs_and_always_the_last(tmp_path: Path) -> None:
    assert [e for e in range(1, 8) if checkpoint_due(e, 3)] == [3, 6]
    data_config = _config(tmp_path, epochs=5, checkpoint_every=2)
    data_config.dataset.limit_train = 64
    data_config.dataset.limit_test = 32
    states: list[int | None] = []
    train_module.train_trial(data_config, WorkerEnv(), lambda m, s: states.append(s and s["epoch"]))
    assert states == [None, 2, None, 4, 5]


@pytest.mark.parametrize(("version", "ok"), [("570.86.15", False), ("580.65.06", True)])
def test_cluster_worker_setup_refuses_a_driver_older_than_r580(tmp_path, version, ok) -> None:
    import os
    import subprocess

    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "cluster.yaml").read_text())
    (guard,) = [c for c in config["worker_setup_commands"] if "nvidia-smi" in c]
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", guard], env=env, capture_output=True, text=True)
    assert (proc.returncode == 0) is ok
    assert ok or (version in proc.stderr and "R580" in proc.stderr)
