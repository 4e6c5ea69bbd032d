"""What runs inside Ray for one trial: the Tune trainable and the training it starts.

`trial_driver` is the Tune trainable. A one-worker trial (executor `inline`, the default for
one worker) trains right there, in the Tune trial's own process: no worker group, no
controller, one process per trial. A trial of several workers (executor `torch_trainer`)
starts one Ray Train `TorchTrainer` under a stable run name, whose workers run `train_worker`.
Both run the same `raysweep.train.train_trial` and write the same checkpoints (`state.pt`).
Everything here imports Ray and torch lazily: the driver only pickles these functions.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raysweep import faults
from raysweep.records import CheckpointState, RunSettings, TrialPayload
from raysweep.resources import TrialResources, resolve, torch_threads, trial_request
from raysweep.sections import RequestSpec
from raysweep.storage import STATE_FILE, filesystem, load_state_file, write_atomic
from raysweep.trial_dirs import (
    EPOCH_FILE,
    checkpoints_newest_first,
    claim_trial_dir,
    ended_before,
    experiment_path,
    mark_done,
    newest_checkpoint,
    trial_dir_at,
)


def _resume_state(*checkpoints: Any) -> CheckpointState | None:
    """The checkpoint dict to go on from: the first of `checkpoints` (newest first) that loads.

    None on a trial's first start. A checkpoint whose `state.pt` cannot be read (cut short by
    a crash while it was copied to storage) is passed over for the one before it.
    """
    errors = []
    for checkpoint in checkpoints:
        if checkpoint is None:
            continue
        try:
            with checkpoint.as_directory() as directory:
                return load_state_file(Path(directory) / STATE_FILE)
        except Exception as exc:  # noqa: BLE001 - a broken file of any kind: try the previous
            errors.append(f"{checkpoint.path}: {type(exc).__name__}: {exc}")
    if errors:
        raise RuntimeError("no readable checkpoint to resume from: " + "; ".join(errors))
    return None


def _reporter(
    report: Callable[..., None], checkpoint_cls: Any, trial_id: str = "", export: bool = False
) -> Any:
    """`train_trial`'s report function over Ray's `report(metrics, checkpoint=...)`; with
    `export`, the last checkpoint also holds the model as a torch.export program
    (`raysweep.exported`), which the driver logs to MLflow."""
    import torch

    def send(metrics: dict[str, Any], state: CheckpointState | None) -> None:
        if state is None:
            report(metrics, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as tmp:
            write_atomic(Path(tmp) / STATE_FILE, lambda f: torch.save(state, f))
            if export and (state.get("last") or {}).get("is_last_epoch"):
                from raysweep.exported import PROGRAM_FILE, save_program

                save_program(state, Path(tmp) / PROGRAM_FILE)
            # Written last: a checkpoint directory with this file has a complete state.pt.
            (Path(tmp) / EPOCH_FILE).write_text(str(state["epoch"]))
            report(metrics, checkpoint=checkpoint_cls.from_directory(tmp))
        faults.hold("after_checkpoint", trial_id, state["epoch"])

    return send


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker entry: rebuild the config, resume from a checkpoint, train, report."""
    import ray.train
    import ray.train.torch
    import torch

    from raysweep.config import TrialConfig
    from raysweep.train import WorkerEnv, train_trial

    torch.set_num_threads(loop_config["threads"])
    config = TrialConfig.model_validate(loop_config["config"])
    ctx = ray.train.get_context()
    trial_id = loop_config["trial_id"]
    env = WorkerEnv(
        rank=ctx.get_world_rank(),
        world_size=ctx.get_world_size(),
        device=ray.train.torch.get_device(),
        node_id=ray.get_runtime_context().get_node_id(),
        trial_id=trial_id,
    )
    # The run directory is the truth, as for an inline trial: a worker's report is queued, so
    # a checkpoint it saved can be missing from Ray Train's record when the process driving
    # the trial died before the report reached it (the trial would start again from zero).
    fs, run_dir = filesystem(loop_config["run_dir"])
    checkpoints = checkpoints_newest_first(fs, run_dir)
    resume = _resume_state(*checkpoints, ray.train.get_checkpoint())
    # No model export here (raysweep.exported): a worker group's processes are new for each
    # trial, so each would pay the first export's cost on the trial's critical path; the
    # driver exports it while the next trial's workers start.
    report = _reporter(ray.train.report, ray.train.Checkpoint, trial_id)
    train_trial(config, env, report, resume=resume)


def assigned_device(gpu_ids: list[Any], visible: str | None) -> tuple[str, int | None]:
    """(device type, index) of the GPU Ray assigned this process, from `ray.get_gpu_ids()`
    and CUDA_VISIBLE_DEVICES: ("cpu", None) without one.

    Ray normally sets CUDA_VISIBLE_DEVICES to the assigned GPUs (the first is then cuda:0);
    where it does not (RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES, or a mask Ray did not
    write), the assigned id is found among the visible devices, or used as the index."""
    if not gpu_ids:
        return "cpu", None
    if len(gpu_ids) > 1:
        raise RuntimeError(
            f"this worker was given {len(gpu_ids)} GPUs ({gpu_ids}) but trains on one: set "
            "resources.gpus_per_worker to 1 or less (workers_per_trial for more GPUs)"
        )
    wanted = str(gpu_ids[0])
    masked = [d.strip() for d in (visible or "").split(",") if d.strip()]
    if visible is not None and wanted in masked:
        return "cuda", masked.index(wanted)
    if visible is not None and masked:
        return "cuda", 0  # a mask of UUIDs or one Ray wrote for this process only
    return "cuda", int(wanted) if wanted.isdigit() else 0


def _share_gpu(device: Any, gpus_per_worker: float) -> None:
    """Cap this process's share of the GPU's memory at its fraction of the GPU, so trials
    packed on one GPU (fractional `gpus_per_worker`) fail alone instead of starving others."""
    import torch

    if device.type == "cuda" and 0 < gpus_per_worker < 1:
        torch.cuda.set_per_process_memory_fraction(gpus_per_worker, device)


def _release_gpu(device: Any) -> None:
    """Hand the GPU memory this trial cached back to the driver.

    Tune reuses the trial's process for the next trial; memory cached here would stay
    reserved from other trials sharing the GPU (fractional GPUs). Called in a `finally`:
    a trial ASHA stops ends with an exception raised inside `report`."""
    import gc

    import torch

    if device.type == "cuda" and torch.cuda.is_available():
        gc.collect()  # the model, optimizer and data of the trial's frames, now unreachable
        torch.cuda.empty_cache()


def train_inline(trial: dict[str, Any], run: RunSettings, req: TrialResources) -> None:
    """A one-worker trial trained in the Tune trial's own process (no worker group).

    Same loop, metrics and checkpoints as a Ray Train worker; Tune keeps the checkpoints and
    retries the trial from the newest one (`train.max_failures`), as does `--resume`.
    """
    import ray
    import torch
    from ray import tune

    from raysweep import device as device_module
    from raysweep import train as train_module
    from raysweep.config import TrialConfig
    from raysweep.train import WorkerEnv

    gc.freeze()  # what this process imported (torch, Ray Tune): see `trial_driver`
    gc.enable()
    experiment = tune.get_context().get_experiment_name()
    trial_id = trial["trial_id"]
    fs, trial_dir = trial_dir_at(run["storage"], experiment, trial_id)
    claim_trial_dir(fs, trial_dir, trial, experiment)
    if ended_before(fs, trial_dir):
        return
    torch.set_num_threads(torch_threads(req))
    config = TrialConfig.model_validate(trial["config"])
    gpus = req.gpus_per_worker
    kind, index = (
        assigned_device(ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"))
        if gpus > 0
        else ("cpu", None)
    )
    env = WorkerEnv(
        device=torch.device(kind, index),
        node_id=ray.get_runtime_context().get_node_id(),
        trial_id=trial_id,
    )
    resume = _resume_state(*checkpoints_newest_first(fs, trial_dir), tune.get_checkpoint())
    report = _reporter(tune.report, tune.Checkpoint, trial_id, config.train.log_model)
    try:
        if kind == "cuda":
            device_module.check_cuda(env.device)
            _share_gpu(env.device, gpus)
        last = train_module.train_trial(config, env, report, resume=resume)
    finally:
        _release_gpu(env.device)
    final = newest_checkpoint(fs, trial_dir)
    mark_done(fs, trial_dir, last, final.path if final else None)


def trainer_class() -> type:
    """`TorchTrainer` without Ray Data's dataset actor, which raysweep's workers never use.

    Ray 2.60 starts a `DatasetManager` actor for every trainer, datasets or not: one more
    process per trial, seconds of startup on a 2-core machine. Workers here load their own
    shards (raysweep.data), so the callback that owns it is left out.
    """
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback

    class SweepTrainer(TorchTrainer):
        def _create_default_callbacks(self) -> list[Any]:
            callbacks = super()._create_default_callbacks()
            if self.datasets:
                return callbacks
            return [c for c in callbacks if not isinstance(c, DatasetsCallback)]

    return SweepTrainer


def train_with_workers(trial: dict[str, Any], run: RunSettings, req: TrialResources) -> None:
    """One TorchTrainer run for the trial, named `<experiment>-train/<trial id>` so that a
    resumed sweep's trainer finds the trial's checkpoints again."""
    import ray.train
    from ray import tune

    from raysweep import placement
    from raysweep.left_groups import GroupNoted, remove_left_group
    from raysweep.train_reports import ForwardReports, fit_reporting, report_queue

    experiment = tune.get_context().get_experiment_name()
    fs, trial_dir = trial_dir_at(run["storage"], experiment, trial["trial_id"])
    claim_trial_dir(fs, trial_dir, trial, experiment)
    if ended_before(fs, trial_dir):
        return
    remove_left_group(fs, trial_dir)  # by an attempt whose process died
    timeout = run.get("placement_timeout_s")  # how long its workers may wait to be placed
    reports = report_queue()
    trainer = trainer_class()(
        train_worker,
        train_loop_config={
            "config": trial["config"],
            "threads": torch_threads(req),
            "trial_id": trial["trial_id"],
            "run_dir": f"{run['storage'].rstrip('/')}/{experiment}-train/{trial['trial_id']}",
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=req.workers,
            use_gpu=req.gpus_per_worker > 0,
            resources_per_worker=req.per_worker,
        ),
        run_config=ray.train.RunConfig(
            name=f"{experiment}-train/{trial['trial_id']}",
            storage_path=run["storage"],
            failure_config=ray.train.FailureConfig(
                max_failures=trial["config"]["train"]["max_failures"]
            ),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[
                ForwardReports(reports),  # not Ray's TuneReportCallback: train_reports says why
                GroupNoted(experiment_path(run["storage"], experiment), trial["trial_id"]),
                *placement.deadline_callbacks(trial["trial_id"], timeout, req),
            ],
        ),
    )
    # PlacementTimeoutError: its workers found no node
    result = fit_reporting(lambda: placement.fit(trainer, timeout), reports, tune.report)
    checkpoint = result.checkpoint.path if result.checkpoint else None
    mark_done(fs, trial_dir, dict(result.metrics or {}), checkpoint)


def trial_resources(tune_config: TrialPayload) -> TrialResources:
    """What the trial asks of the cluster: its own (its study's) resources, resolved against
    the cluster the sweep started on; the same answer on the driver and in the trial."""
    spec = RequestSpec.model_validate(tune_config["trial"]["resources"])
    return resolve(spec, tune_config["run"]["cluster"])


def tune_request(tune_config: TrialPayload) -> dict[str, float]:
    """What the trial's Tune actor asks Ray for (`tune.with_resources` calls it per trial)."""
    return trial_request(trial_resources(tune_config), tune_config["run"]["cluster"])


def trial_driver(tune_config: TrialPayload) -> None:
    """Tune trainable: train the trial inline or through a TorchTrainer worker group."""
    faults.announce("trial", tune_config["trial"]["trial_id"])
    req = trial_resources(tune_config)
    if req.inline:
        # Python's cyclic garbage collector walks every object the process has on each full
        # pass: with torch and Ray Tune imported, a tenth of a second or more, several times
        # a trial. None runs while torch is imported, and what the process made before the
        # trial trains is set aside until it ends (`train_inline`).
        gc.disable()
        try:
            train_inline(tune_config["trial"], tune_config["run"], req)
        finally:
            gc.unfreeze()
            gc.enable()
    else:
        train_with_workers(tune_config["trial"], tune_config["run"], req)
