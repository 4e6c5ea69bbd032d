"""Tests for what one trial asks of the cluster and whether it fits (no ray)."""

from __future__ import annotations

import os

import pytest

from raysweep.resources import (
    TrialResources,
    concurrency,
    local_cluster,
    local_gpu_count,
    placement_problems,
    resolve,
    torch_threads,
    trial_request,
)
from raysweep.sections import ResourcesSpec


@pytest.mark.parametrize(
    ("cluster", "gpus"),
    [
        ({"CPU": 4.0}, 0.0),
        ({"CPU": 4.0, "GPU": 0.0}, 0.0),
        ({"CPU": 4.0, "GPU": 0.5}, 0.0),
        ({"CPU": 4.0, "GPU": 1.0}, 1.0),
        ({"CPU": 64.0, "GPU": 8.0}, 1.0),
    ],
)
def test_resolve_gpus_default(cluster: dict[str, float], gpus: float) -> None:
    req = resolve(ResourcesSpec(), cluster)
    assert req == TrialResources(workers=1, cpus_per_worker=1.0, gpus_per_worker=gpus, inline=True)


def test_resolve_keeps_explicit_values() -> None:
    spec = ResourcesSpec(workers_per_trial=2, cpus_per_worker=3, gpus_per_worker=0)
    assert resolve(spec, {"CPU": 8.0, "GPU": 4.0}) == TrialResources(2, 3.0, 0.0)
    half = ResourcesSpec(gpus_per_worker=0.5)
    assert resolve(half, {"CPU": 8.0}).gpus_per_worker == 0.5


@pytest.mark.parametrize(
    ("executor", "workers", "inline"),
    [
        ("auto", 1, True),
        ("auto", 2, False),
        ("inline", 1, True),
        ("torch_trainer", 1, False),
        ("torch_trainer", 4, False),
    ],
)
def test_resolve_executor(executor: str, workers: int, inline: bool) -> None:
    spec = ResourcesSpec(workers_per_trial=workers, executor=executor)
    assert resolve(spec, {"CPU": 8.0}).inline is inline


def test_inline_needs_one_worker() -> None:
    with pytest.raises(ValueError, match="executor: inline trains in one process"):
        ResourcesSpec(workers_per_trial=2, executor="inline")


@pytest.mark.parametrize(
    ("req", "cluster", "asked"),
    [
        # Inline: the Tune trial is the worker, so it asks for the worker's share itself.
        (TrialResources(1, 2.0, 0.0, inline=True), {"CPU": 4.0}, {"CPU": 2.0}),
        (TrialResources(1, 1.0, 0.25, inline=True), {"CPU": 4.0}, {"CPU": 1.0, "GPU": 0.25}),
        # A worker group: the driver takes no CPU, only a driver slot where the cluster has them.
        (
            TrialResources(2, 1.0, 0.0),
            {"CPU": 4.0, "trial_driver": 10.0},
            {"CPU": 0, "trial_driver": 1},
        ),
        (TrialResources(2, 1.0, 0.0), {"CPU": 4.0}, {"CPU": 0.001}),
        # With raysweep's own slots (a local Ray, cluster.yaml's head): 1/N of them where N
        # such trials fit, so no more worker groups start than their workers fit.
        (
            TrialResources(2, 1.0, 0.0),
            {"CPU": 4.0, "trial_driver": 10000.0},
            {"CPU": 0, "trial_driver": 5000},
        ),
        (
            TrialResources(4, 2.0, 1.0),
            {"CPU": 48.0, "GPU": 4.0, "trial_driver": 10000.0},
            {"CPU": 0, "trial_driver": 10000},
        ),
        (
            TrialResources(2, 1.0, 0.0),
            {"CPU": 6.0, "trial_driver": 10000.0},
            {"CPU": 0, "trial_driver": 3333},
        ),
    ],
)
def test_trial_request(
    req: TrialResources, cluster: dict[str, float], asked: dict[str, float]
) -> None:
    assert trial_request(req, cluster) == asked


def test_totals_and_per_worker() -> None:
    req = TrialResources(workers=2, cpus_per_worker=1.5, gpus_per_worker=1.0)
    assert req.total == {"CPU": 3.0, "GPU": 2.0}
    assert req.per_worker == {"CPU": 1.5, "GPU": 1.0}
    cpu_only = TrialResources(workers=3, cpus_per_worker=2.0, gpus_per_worker=0.0)
    assert cpu_only.total == {"CPU": 6.0}
    assert cpu_only.per_worker == {"CPU": 2.0}


@pytest.mark.parametrize(
    ("req", "text"),
    [
        (TrialResources(1, 1.0, 0.0), "1 worker x (1 CPU)"),
        (TrialResources(2, 1.0, 0.5), "2 workers x (1 CPU, 0.5 GPU)"),
        (TrialResources(1, 2.5, 1.0), "1 worker x (2.5 CPU, 1 GPU)"),
        (TrialResources(4, 8.0, 2.0), "4 workers x (8 CPU, 2 GPU)"),
    ],
)
def test_describe(req: TrialResources, text: str) -> None:
    assert req.describe() == text


def test_placement_fits() -> None:
    assert placement_problems(TrialResources(1, 1.0, 0.0), {"CPU": 2.0, "GPU": 0.0}) == []
    assert placement_problems(TrialResources(2, 1.0, 0.0), {"CPU": 2.0}) == []
    assert placement_problems(TrialResources(2, 4.0, 1.0), {"CPU": 8.0, "GPU": 2.0}) == []


def test_placement_too_many_cpus() -> None:
    problems = placement_problems(TrialResources(2, 4.0, 0.0), {"CPU": 2.0, "GPU": 0.0})
    assert problems == ["a trial needs 8 CPU (2 workers x (4 CPU)) but the cluster has 2"]


def test_placement_gpus_missing() -> None:
    problems = placement_problems(TrialResources(1, 1.0, 1.0), {"CPU": 2.0})
    assert problems == ["a trial needs 1 GPU (1 worker x (1 CPU, 1 GPU)) but the cluster has 0"]


def test_placement_both_short() -> None:
    problems = placement_problems(TrialResources(2, 2.0, 1.0), {"CPU": 2.0, "GPU": 1.0})
    assert len(problems) == 2
    assert problems[0].startswith("a trial needs 4 CPU")
    assert problems[1].startswith("a trial needs 2 GPU")


@pytest.mark.parametrize(
    ("req", "cluster", "limit", "expected"),
    [
        (TrialResources(1, 1.0, 0.0), {"CPU": 2.0, "GPU": 0.0}, None, 2),
        (TrialResources(1, 2.0, 0.0), {"CPU": 8.0}, None, 4),
        (TrialResources(1, 2.0, 0.0), {"CPU": 8.0}, 3, 3),
        (TrialResources(1, 2.0, 0.0), {"CPU": 8.0}, 10, 4),
        (TrialResources(2, 1.0, 0.0), {"CPU": 5.0}, None, 2),
        (TrialResources(1, 1.0, 1.0), {"CPU": 16.0, "GPU": 2.0}, None, 2),  # GPUs bound it
        (TrialResources(1, 1.0, 0.5), {"CPU": 16.0, "GPU": 1.0}, None, 2),  # two per GPU
        (TrialResources(1, 4.0, 0.0), {"CPU": 2.0}, None, 1),  # does not fit: at least 1
        (TrialResources(1, 1.0, 1.0), {"CPU": 2.0}, None, 1),  # no GPU at all: at least 1
    ],
)
def test_concurrency(
    req: TrialResources, cluster: dict[str, float], limit: int | None, expected: int
) -> None:
    assert concurrency(req, cluster, limit) == expected


@pytest.mark.parametrize(
    ("req", "cluster", "expected"),
    [
        (TrialResources(1, 1.0, 0.1), {"CPU": 16.0, "GPU": 1.0}, 10),
        (TrialResources(1, 0.2, 0.0), {"CPU": 2.0}, 10),
    ],
    ids=["gpu-0.1", "cpu-0.2"],
)
def test_concurrency_with_fractions(
    req: TrialResources, cluster: dict[str, float], expected: int
) -> None:
    assert concurrency(req, cluster, None) == expected


@pytest.mark.parametrize(
    ("visible", "count"),
    [("0", 1), ("0,1", 2), ("0, 1 ,", 2), ("", 0), ("-1", 0), ("GPU-abc,GPU-def,GPU-0", 3)],
)
def test_local_gpu_count_follows_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, visible: str, count: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert local_gpu_count() == count


def test_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert local_cluster() == {"CPU": float(os.cpu_count() or 1), "GPU": 2.0}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert local_gpu_count() >= 0


@pytest.mark.parametrize(("cpus", "threads"), [(1.0, 1), (0.5, 1), (2.5, 2), (4.0, 4)])
def test_torch_threads(cpus: float, threads: int) -> None:
    assert torch_threads(TrialResources(1, cpus, 0.0)) == threads


def test_a_worker_must_fit_one_node_not_only_the_cluster_totals(tmp_path) -> None:
    from raysweep.resources import autoscaling_node_types, node_shapes, worker_fit_problems

    req = TrialResources(workers=1, cpus_per_worker=8, gpus_per_worker=1, inline=True)
    four_cpu_gpu_nodes = [{"CPU": 4.0, "GPU": 1.0}] * 4  # 16 CPUs, 4 GPUs in all
    problems = placement_problems(req, {"CPU": 16.0, "GPU": 4.0}, nodes=four_cpu_gpu_nodes)
    assert len(problems) == 1 and "single node" in problems[0] and "4 CPU + 1 GPU" in problems[0]
    assert worker_fit_problems(req, [{"CPU": 0.0}, {"CPU": 8.0, "GPU": 1.0}]) == []
    assert worker_fit_problems(req, []) == []  # nothing known about the nodes: totals only
    config = tmp_path / "bootstrap.yaml"
    config.write_text(
        "max_workers: 4\nhead_node_type: head\navailable_node_types:\n"
        "  head: {resources: {CPU: 0, trial_driver: 10}}\n"
        "  gpu: {max_workers: 4, resources: {CPU: 4, GPU: 1}}\n"
        "  off: {max_workers: 0, resources: {CPU: 96, GPU: 8}}\n"
    )
    shapes = autoscaling_node_types(config)
    assert shapes == [{"CPU": 0.0, "trial_driver": 10.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert node_shapes(config) == shapes  # no Ray connected here: the autoscaler's types
    assert worker_fit_problems(req, shapes)
    assert autoscaling_node_types(tmp_path / "missing.yaml") == []


def test_plan_says_what_sharing_a_gpu_costs() -> None:
    from raysweep.planview import sharing_note

    note = sharing_note(0.25)
    assert note is not None and "4 trials per GPU" in note and "25%" in note
    assert sharing_note(1.0) is None and sharing_note(0.0) is None
