"""`raysweep plan`: the planned trials as text or JSON, with their resources and placement."""

from __future__ import annotations

import json

from raysweep.config import SweepSpec
from raysweep.plan import Trial, format_value, swept_params
from raysweep.resources import concurrency, local_cluster, placement_problems, resolve


def _cluster(address: str | None) -> tuple[dict[str, float], str]:
    if not address:
        return local_cluster(), "this machine"
    from raysweep.ray_session import init_ray

    return init_ray(address, debug=False), f"the cluster at {address}"


def sharing_note(gpus_per_worker: float) -> str | None:
    """What packing trials on a GPU costs (fractional `gpus_per_worker`), or None."""
    if not 0 < gpus_per_worker < 1:
        return None
    per_gpu = int(1 / gpus_per_worker + 1e-9)
    return (
        f"GPU sharing: up to {per_gpu} trials per GPU, each capped at "
        f"{gpus_per_worker:.0%} of its memory (a trial that needs more fails with out of "
        "memory) and sharing its compute (each trains slower than alone; worth it when one "
        "trial leaves the GPU mostly idle)"
    )


def plan_report(
    spec: SweepSpec, trials: list[Trial], as_json: bool = False, address: str | None = None
) -> str:
    """The plan as a person (or a script, with as_json) reads it."""
    cluster, where = _cluster(address)
    req = resolve(spec.resources, cluster)
    problems = placement_problems(req, cluster)
    parallel = concurrency(req, cluster, spec.resources.max_concurrent)
    epochs = sum(t.config.train.epochs for t in trials)
    if as_json:
        return json.dumps(
            {
                "name": spec.name,
                "count": len(trials),
                "epochs": epochs,
                "resources_per_trial": {"workers": req.workers, **req.per_worker},
                "executor": req.executor,
                "parallel": parallel,
                "placement_problems": problems,
                "gpu_sharing": sharing_note(req.gpus_per_worker),
                "trials": [t.to_json() for t in trials],
            },
            indent=1,
        )
    columns = swept_params(trials)
    header = ["trial", *columns, "studies"]
    rows = [
        [t.trial_id, *(format_value(t.overrides.get(c, "")) for c in columns), ",".join(t.studies)]
        for t in trials
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        f"sweep '{spec.name}': {len(trials)} trials, {epochs} epochs in all",
        f"base: model {spec.model.name}, dataset {spec.dataset.name}, "
        f"{spec.train.epochs} epochs, {spec.train.optimizer.name} lr "
        f"{format_value(spec.train.optimizer.lr)}, batch {spec.train.batch_size}",
        f"each trial: {req.describe()} ({req.executor}); up to {parallel} at a time on {where}",
        *filter(None, [sharing_note(req.gpus_per_worker)]),
        "",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
    ]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for problem in problems:
        lines.append(f"raysweep: warning: cannot be placed on {where}: {problem}")
    return "\n".join(lines)
