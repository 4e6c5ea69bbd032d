"""`raysweep plan`: the planned trials as text or JSON, with their resources and placement."""

from __future__ import annotations

import json

from raysweep.config import SweepSpec
from raysweep.plan import Trial, format_value, is_adaptive, study_requests, swept_params
from raysweep.resources import (
    TrialResources,
    concurrency,
    local_cluster,
    placement_problems,
    resolve,
    study_problems,
    sweep_concurrency,
)
from raysweep.searchspace import describe_space, startup_trials, tpe_study


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
    spec: SweepSpec,
    trials: list[Trial],
    as_json: bool = False,
    address: str | None = None,
    studies: tuple[str, ...] = (),
) -> str:
    """The plan as a person (or a script, with as_json) reads it: of the `studies` selected
    (`--study`; `trials` are theirs already), or of the whole sweep."""
    cluster, where = _cluster(address)
    requests = {n: resolve(r, cluster) for n, r in study_requests(spec, studies).items()}
    uniform = len(set(requests.values())) == 1
    req = next(iter(requests.values()))
    problems = study_problems(requests, cluster)
    parallel = sweep_concurrency(requests.values(), cluster, spec.resources.max_concurrent)
    epochs = sum(t.config.train.epochs for t in trials)
    if as_json:
        return json.dumps(
            {
                "name": spec.name,
                "count": len(trials),
                "epochs": epochs,
                # One request for every trial: these; studies that differ: null (see studies).
                "resources_per_trial": _request_json(req) if uniform else None,
                "executor": req.executor if uniform else None,
                "parallel": parallel,
                "placement_problems": problems,
                "gpu_sharing": sharing_note(req.gpus_per_worker) if uniform else None,
                "selected_studies": list(studies),
                "studies": [_study_json(name, r, trials, cluster) for name, r in requests.items()],
                "trials": [t.to_json() for t in trials],
                **({"search": _search_json(spec)} if is_adaptive(spec) else {}),
            },
            indent=1,
        )
    if is_adaptive(spec):
        return _search_report(spec, where, req, parallel, problems)
    columns = swept_params(trials)
    header = ["trial", *columns, "studies"]
    rows = [
        [t.trial_id, *(format_value(t.overrides.get(c, "")) for c in columns), ",".join(t.studies)]
        for t in trials
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    only = f" (--study {','.join(studies)})" if studies else ""
    lines = [
        f"sweep '{spec.name}': {len(trials)} trials, {epochs} epochs in all{only}",
        f"base: model {spec.model.name}, dataset {spec.dataset.name}, "
        f"{spec.train.epochs} epochs, {spec.train.optimizer.name} lr "
        f"{format_value(spec.train.optimizer.lr)}, batch {spec.train.batch_size}",
        *(
            [
                f"each trial: {req.describe()} ({req.executor}); up to {parallel} at a time "
                f"on {where}",
                *filter(None, [sharing_note(req.gpus_per_worker)]),
            ]
            if uniform
            else _study_lines(requests, trials, cluster, parallel, where)
        ),
        "",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
    ]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for problem in problems:
        lines.append(f"raysweep: warning: cannot be placed on {where}: {problem}")
    return "\n".join(lines)


def _request_json(req: TrialResources) -> dict[str, float]:
    return {"workers": req.workers, **req.per_worker}


def _study_json(
    name: str, req: TrialResources, trials: list[Trial], cluster: dict[str, float]
) -> dict[str, object]:
    """One study's request, how many of its trials fit at once, and why it never fits."""
    problems = placement_problems(req, cluster)
    return {
        "name": name,
        "trials": sum(name in t.studies for t in trials),
        "resources_per_trial": _request_json(req),
        "executor": req.executor,
        "fits": 0 if problems else concurrency(req, cluster, None),
        "placement_problems": problems,
        "gpu_sharing": sharing_note(req.gpus_per_worker),
    }


def _study_lines(
    requests: dict[str, TrialResources],
    trials: list[Trial],
    cluster: dict[str, float],
    parallel: int,
    where: str,
) -> list[str]:
    """Per study, when studies ask for different resources: its trials, its request and how
    many of them fit at once; then the sweep's cap on trials at once."""
    rows = []
    for name, req in requests.items():
        info = _study_json(name, req, trials, cluster)
        fits = f"{info['fits']} at a time" if info["fits"] else "never fits"
        count = f"{info['trials']} trial{'' if info['trials'] == 1 else 's'}"
        rows.append([name, count, f"{req.describe()} ({req.executor})", fits])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"resources per study (on {where}):"]
    lines += [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines += [
        f"  GPU sharing ({name}): {note.removeprefix('GPU sharing: ')}"
        for name, req in requests.items()
        if (note := sharing_note(req.gpus_per_worker))
    ]
    lines.append(f"up to {parallel} trial{'' if parallel == 1 else 's'} at a time on {where}")
    return lines


def _search_json(spec: SweepSpec) -> dict[str, object]:
    study = tpe_study(spec)
    return {
        "mode": "tpe",
        "samples": study.samples,
        "startup_trials": startup_trials(study.samples),
        "seed": spec.train.seed,
        "axes": study.axes,
    }


def _search_report(
    spec: SweepSpec, where: str, req: TrialResources, parallel: int, problems: list[str]
) -> str:
    """The plan of an adaptive sweep: its points are chosen as results arrive, so the plan
    says what it can: how many trials at most, the space, and what each trial asks for."""
    study = tpe_study(spec)
    lines = [
        f"sweep '{spec.name}': up to {study.samples} trials chosen by tpe as results arrive "
        f"(Optuna's TPE, seed {spec.train.seed}; the first {startup_trials(study.samples)} "
        f"are random), ranked by {spec.sweep.metric} ({spec.sweep.goal})",
        f"base: model {spec.model.name}, dataset {spec.dataset.name}, "
        f"{spec.train.epochs} epochs, {spec.train.optimizer.name} lr "
        f"{format_value(spec.train.optimizer.lr)}, batch {spec.train.batch_size}",
        *(f"set: {path} = {format_value(value)}" for path, value in study.set.items()),
        f"each trial: {req.describe()} ({req.executor}); up to {parallel} at a time on {where}",
        f"scheduler: {spec.sweep.scheduler.name}",
        "",
        "search space:",
        *(f"  {line}" for line in describe_space(study.axes)),
    ]
    lines += [f"raysweep: warning: cannot be placed on {where}: {p}" for p in problems]
    return "\n".join(lines)
