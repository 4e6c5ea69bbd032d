"""What one trial asks of the cluster, and whether that can ever be placed (no ray import).

A trial of several workers is a Tune driver (holding only the custom `trial_driver` resource, so
it never takes the CPUs its workers need; DESIGN.md records the hang that avoids) plus
`workers_per_trial` Ray Train workers, each asking `cpus_per_worker` CPUs and `gpus_per_worker`
GPUs. A one-worker trial (by default) trains inside its Tune trial, which then asks for the
worker's CPUs and GPUs itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from raysweep.sections import RequestSpec

DRIVER_RESOURCE = "trial_driver"
# Plenty of driver slots: concurrency is bounded by the workers' CPUs/GPUs, not by drivers.
DRIVER_SLOTS = 10_000
# The cluster config `ray up` leaves on the head node (the autoscaler reads it).
AUTOSCALING_CONFIG = "~/ray_bootstrap_config.yaml"


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


def resolve(spec: RequestSpec, cluster: dict[str, float]) -> TrialResources:
    """Fill in defaults: GPUs per worker default to 1 where the cluster has GPUs, else 0."""
    gpus = spec.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    return TrialResources(spec.workers_per_trial, spec.cpus_per_worker, gpus, spec.inline)


def placement_problems(
    req: TrialResources,
    cluster: dict[str, float],
    nodes: list[dict[str, float]] | None = None,
) -> list[str]:
    """Why `req` can never be placed on `cluster` (empty when it fits).

    Checked against the cluster's totals and, per worker, against the kinds of node it has
    (`nodes`; by default `node_shapes()`): a worker is placed whole on one node, so 8
    CPUs per worker never fit a cluster of 4-CPU nodes, however many of them there are."""
    problems = worker_fit_problems(req, node_shapes() if nodes is None else nodes)
    for name, need in req.total.items():
        have = cluster.get(name, 0.0)
        if need > have + 1e-9:
            problems.append(
                f"a trial needs {need:g} {name} ({req.describe()}) but the cluster has {have:g}"
            )
    return problems


def worker_fit_problems(req: TrialResources, nodes: list[dict[str, float]]) -> list[str]:
    """Why one worker of `req` fits on none of `nodes` (empty when it fits one, or when no
    node is known)."""
    need = {k: v for k, v in req.per_worker.items() if v > 0}
    if not nodes or any(_fits(need, node) for node in nodes):
        return []
    largest = ", ".join(_describe_node(n) for n in _distinct(nodes))
    return [
        f"one worker needs {_describe_node(need)} on a single node ({req.describe()}) but no "
        f"node type has that: the nodes have {largest}"
    ]


def _fits(need: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in need.items())


def _describe_node(node: dict[str, float]) -> str:
    cpu, gpu = node.get("CPU", 0.0), node.get("GPU", 0.0)
    return f"{cpu:g} CPU" + (f" + {gpu:g} GPU" if gpu else "")


def _distinct(nodes: list[dict[str, float]]) -> list[dict[str, float]]:
    seen: list[dict[str, float]] = []
    for node in nodes:
        shape = {"CPU": node.get("CPU", 0.0), "GPU": node.get("GPU", 0.0)}
        if shape not in seen:
            seen.append(shape)
    return seen


def live_nodes() -> list[dict[str, float]]:
    """The resources of each live node of the Ray this process is connected to (empty when
    it is connected to none; Ray is never imported or started here)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return []
    return [
        {k: float(v) for k, v in (n.get("Resources") or {}).items()}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def node_shapes(config: str | Path = AUTOSCALING_CONFIG) -> list[dict[str, float]]:
    """Every kind of node a worker may land on: the live nodes and the autoscaler's node
    types. Empty without either (a local Ray about to start: one node, `cluster`, whose
    totals `placement_problems` checks anyway)."""
    return live_nodes() + autoscaling_node_types(config)


def concurrency(req: TrialResources, cluster: dict[str, float], limit: int | None) -> int:
    """How many trials can run at once (at least 1), capped by `limit`."""
    fits = min(
        int(cluster.get(name, 0.0) / need + 1e-9) for name, need in req.total.items() if need > 0
    )
    fits = max(1, fits)
    return min(fits, limit) if limit else fits


def sweep_concurrency(
    requests: Iterable[TrialResources], cluster: dict[str, float], limit: int | None
) -> int:
    """Tune's cap on trials at once: as many as the smallest request fits (the most trials
    that can ever run together), capped by `limit`; one request: exactly `concurrency`.

    Not fewer, as the largest request would have it: that would run four 1-GPU trials one at a
    time because another study's trials take all 4 GPUs. The cap alone does not keep Ray from
    starting more trials than fit: inline trials hold their own CPUs/GPUs, and a worker-group
    trial's driver holds its share of the `trial_driver` slots (`trial_request`), so at most
    as many TorchTrainers start as their workers fit, whatever else runs."""
    return max(concurrency(req, cluster, limit) for req in requests)


def study_problems(requests: dict[str, TrialResources], cluster: dict[str, float]) -> list[str]:
    """Why a study's trials can never be placed (`placement_problems`), each problem naming its
    study (`study 'lenet': ...`) when studies ask for different resources."""
    if len(set(requests.values())) == 1:
        return placement_problems(next(iter(requests.values())), cluster)
    return [
        f"study '{name}': {problem}"
        for name, req in requests.items()
        for problem in placement_problems(req, cluster)
    ]


def request_params(requests: dict[str, TrialResources]) -> dict[str, str]:
    """The sweep's parent-run params `resources` and `executor`: one value each, or per study
    (`lenet: torch_trainer; resnet: inline`) when studies ask for different resources."""
    if len(set(requests.values())) == 1:
        req = next(iter(requests.values()))
        return {"resources": req.describe(), "executor": req.executor}
    return {
        "resources": "; ".join(f"{name}: {r.describe()}" for name, r in requests.items()),
        "executor": "; ".join(f"{name}: {r.executor}" for name, r in requests.items()),
    }


def describe_requests(requests: dict[str, TrialResources]) -> str:
    """`1 worker x (1 CPU) (inline)` when every study asks the same, else per study:
    `lenet: 4 workers x (2 CPU, 1 GPU) (torch_trainer); resnet: 1 worker x ... (inline)`."""
    distinct = set(requests.values())
    if len(distinct) == 1:
        req = distinct.pop()
        return f"{req.describe()} ({req.executor})"
    return "; ".join(f"{name}: {r.describe()} ({r.executor})" for name, r in requests.items())


def trial_request(req: TrialResources, cluster: dict[str, float]) -> dict[str, float]:
    """What the Tune trial itself asks for: a worker's share when it trains inline; else a
    driver slot (no CPU), 1/N of raysweep's slots where N trials of `req` fit the cluster.

    The share keeps Tune from starting more worker groups than fit, even when other studies'
    smaller trials let it run more trials at once (the controllers beyond would only wait for
    their workers). Where a cluster has fewer slots than raysweep gives it, one slot."""
    if req.inline:
        return req.per_worker
    if cluster.get(DRIVER_RESOURCE, 0.0) >= DRIVER_SLOTS:
        return {"CPU": 0, DRIVER_RESOURCE: DRIVER_SLOTS // concurrency(req, cluster, None)}
    if cluster.get(DRIVER_RESOURCE):
        return {"CPU": 0, DRIVER_RESOURCE: 1}
    # A cluster started without the resource: a tiny CPU share still works, but can strand a
    # fraction of a CPU (DESIGN.md); cluster.yaml gives the head node the resource.
    return {"CPU": 0.001}


def torch_threads(req: TrialResources) -> int:
    """Intra-op threads per worker: the CPUs it was given (at least 1)."""
    return max(1, int(req.cpus_per_worker))


def autoscaling_capacity(path: str | Path = AUTOSCALING_CONFIG) -> dict[str, float]:
    """The most an autoscaling cluster can grow to, from the config `ray up` leaves on its head.

    A cluster whose GPU workers have `min_workers: 0` shows no GPUs until a trial asks for
    one, so the live resources would make every GPU trial look unplaceable. Each node type
    counts `max_workers` times (capped by the cluster's `max_workers`), the head once. Empty
    where there is no such file (a laptop, a cluster started by hand).
    """
    config = _autoscaling_config(path)
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


def autoscaling_node_types(path: str | Path = AUTOSCALING_CONFIG) -> list[dict[str, float]]:
    """The resources of each node type an autoscaling cluster can launch (those with
    `max_workers` above 0, and the head); empty where there is no such config."""
    config = _autoscaling_config(path)
    head = config.get("head_node_type")
    shapes = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        if name != head and not int(node_type.get("max_workers", 0) or 0):
            continue
        resources = node_type.get("resources") or {}
        shapes.append({k: float(v) for k, v in resources.items()})
    return shapes


def _autoscaling_config(path: str | Path) -> dict:
    """The autoscaler's cluster config at `path`, or {} where it is missing or unreadable."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    try:
        return yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def with_capacity(cluster: dict[str, float], capacity: dict[str, float]) -> dict[str, float]:
    """Per resource, the larger of what the cluster has now and what it can grow to."""
    return {k: max(cluster.get(k, 0.0), capacity.get(k, 0.0)) for k in {*cluster, *capacity}}
