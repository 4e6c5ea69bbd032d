"""What one trial asks of the cluster, and whether that can ever be placed (no ray import).

A trial of several workers is a Tune driver (holding only the custom `trial_driver` resource, so
it never takes the CPUs its workers need; DESIGN.md records the hang that avoids) plus
`workers_per_trial` Ray Train workers, each asking `cpus_per_worker` CPUs and `gpus_per_worker`
GPUs. A one-worker trial (by default) trains inside its Tune trial, which then asks for the
worker's CPUs and GPUs itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from raysweep.config import ResourcesSpec

DRIVER_RESOURCE = "trial_driver"
# Plenty of driver slots: concurrency is bounded by the workers' CPUs/GPUs, not by drivers.
DRIVER_SLOTS = 10_000


@dataclass(frozen=True)
class TrialResources:
    """The resolved request of one trial."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    # Trained in the Tune trial's own process instead of a Ray Train worker group.
    inline: bool = False

    @property
    def total(self) -> dict[str, float]:
        """All the trial's workers together."""
        out = {"CPU": self.workers * self.cpus_per_worker}
        if self.gpus_per_worker:
            out["GPU"] = self.workers * self.gpus_per_worker
        return out

    @property
    def per_worker(self) -> dict[str, float]:
        """One worker's request, as Ray Train's ScalingConfig wants it."""
        out = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            out["GPU"] = self.gpus_per_worker
        return out

    @property
    def executor(self) -> str:
        """How the trial trains, as the sweep file names it: `inline` or `torch_trainer`."""
        return "inline" if self.inline else "torch_trainer"

    def describe(self) -> str:
        """`2 workers x (1 CPU, 0.5 GPU)`."""
        gpu = f", {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else ""
        plural = "s" if self.workers > 1 else ""
        return f"{self.workers} worker{plural} x ({self.cpus_per_worker:g} CPU{gpu})"


def local_gpu_count() -> int:
    """NVIDIA GPUs on this machine, without importing torch (0 where there is no driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def local_cluster() -> dict[str, float]:
    """What a local `ray.init()` would offer."""
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(local_gpu_count())}


def resolve(spec: ResourcesSpec, cluster: dict[str, float]) -> TrialResources:
    """Fill in defaults: GPUs per worker default to 1 where the cluster has GPUs, else 0."""
    gpus = spec.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    inline = spec.executor == "inline" or (spec.executor == "auto" and spec.workers_per_trial == 1)
    return TrialResources(spec.workers_per_trial, spec.cpus_per_worker, gpus, inline)


def placement_problems(req: TrialResources, cluster: dict[str, float]) -> list[str]:
    """Why `req` can never be placed on `cluster` (empty when it fits)."""
    problems = []
    for name, need in req.total.items():
        have = cluster.get(name, 0.0)
        if need > have + 1e-9:
            problems.append(
                f"a trial needs {need:g} {name} ({req.describe()}) but the cluster has {have:g}"
            )
    return problems


def concurrency(req: TrialResources, cluster: dict[str, float], limit: int | None) -> int:
    """How many trials can run at once (at least 1), capped by `limit`."""
    fits = min(
        int(cluster.get(name, 0.0) / need + 1e-9) for name, need in req.total.items() if need > 0
    )
    fits = max(1, fits)
    return min(fits, limit) if limit else fits


def trial_request(req: TrialResources, cluster: dict[str, float]) -> dict[str, float]:
    """What the Tune trial itself asks for: a worker's share when it trains inline."""
    if req.inline:
        return req.per_worker
    if cluster.get(DRIVER_RESOURCE):
        return {"CPU": 0, DRIVER_RESOURCE: 1}
    # A cluster started without the resource: a tiny CPU share still works, but can strand a
    # fraction of a CPU (DESIGN.md); cluster.yaml gives the head node the resource.
    return {"CPU": 0.001}


def torch_threads(req: TrialResources) -> int:
    """Intra-op threads per worker: the CPUs it was given (at least 1)."""
    return max(1, int(req.cpus_per_worker))


AUTOSCALING_CONFIG = "~/ray_bootstrap_config.yaml"


def autoscaling_capacity(path: str | Path = AUTOSCALING_CONFIG) -> dict[str, float]:
    """The most an autoscaling cluster can grow to, from the config `ray up` leaves on its head.

    A cluster whose GPU workers have `min_workers: 0` shows no GPUs until a trial asks for
    one, so the live resources would make every GPU trial look unplaceable. Each node type
    counts `max_workers` times (capped by the cluster's `max_workers`), the head once. Empty
    where there is no such file (a laptop, a cluster started by hand).
    """
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    try:
        config = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    cap = config.get("max_workers")
    head = config.get("head_node_type")
    total: dict[str, float] = {}
    for name, node_type in (config.get("available_node_types") or {}).items():
        count = 1 if name == head else int(node_type.get("max_workers", 0) or 0)
        if name != head and cap is not None:
            count = min(count, int(cap))
        for resource, amount in (node_type.get("resources") or {}).items():
            total[resource] = total.get(resource, 0.0) + float(amount) * count
    return total


def with_capacity(cluster: dict[str, float], capacity: dict[str, float]) -> dict[str, float]:
    """Per resource, the larger of what the cluster has now and what it can grow to."""
    return {k: max(cluster.get(k, 0.0), capacity.get(k, 0.0)) for k in {*cluster, *capacity}}
