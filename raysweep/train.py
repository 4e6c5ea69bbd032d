"""The per-worker training loop: one trial's epochs, with or without Ray.

Plain PyTorch (nanoGPT-style): the dataset shard lives on the device as uint8, each batch is
augmented and normalized there, metrics accumulate on the device and are read once per epoch.
`train_trial` knows nothing of Ray: it gets a `report(metrics, state)` function, called once per
epoch on every rank (state is the checkpoint dict on rank 0, None elsewhere). DDP is used when
torch.distributed is initialized with more than one process (Ray Train does that).
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from raysweep import faults
from raysweep.augment import BatchTransform
from raysweep.config import TrialConfig
from raysweep.data import ImageData, load_dataset, shard
from raysweep.device import autocast, check_cuda, configure_backends
from raysweep.earlystop import EarlyStopper
from raysweep.evaluation import Batchwise, evaluate
from raysweep.losses import build_loss
from raysweep.models import create_model
from raysweep.optim import build_optimizer, build_schedule
from raysweep.records import CheckpointState

Report = Callable[[dict[str, Any], "CheckpointState | None"], None]


@dataclass
class WorkerEnv:
    """Where this worker runs: its rank among `world_size` workers and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    node_id: str = ""
    trial_id: str = ""  # names the trial at fault points (raysweep.faults)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Reseeding per (seed, epoch, rank) makes shuffling, augmentation and dropout a pure function
    # of the epoch: a trial resumed from a checkpoint continues exactly as if never stopped.
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**62)


def build_model(config: TrialConfig, data: ImageData) -> nn.Module:
    """The trial's model, sized for the data (channels, classes, image side)."""
    return create_model(
        config.model.name,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        image_size=data.image_size,
        **config.model.kwargs,
    )


def model_meta(config: TrialConfig, data: ImageData) -> dict[str, Any]:
    """What it takes to rebuild the model and its input transform later (predict, load)."""
    return {
        "model": config.model.name,
        "model_kwargs": config.model.kwargs,
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "mean": list(data.mean),
        "std": list(data.std),
        "classes": list(data.classes),
        "dataset": config.dataset.name,
    }


@dataclass
class _Trial:
    """Everything one run of the loop trains with: data on the device, model, optimizer, ..."""

    config: TrialConfig
    env: WorkerEnv
    data: ImageData
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_eval: torch.Tensor  # the train images evaluated in eval mode (`train.eval_train`)
    y_eval: torch.Tensor
    model: nn.Module
    net: nn.Module  # the model as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    schedule: Any
    stopper: EarlyStopper | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    transform: BatchTransform
    local_bs: int  # this rank's batch
    steps: int  # full batches per epoch
    per_rank: int = 0  # train images each rank trains on per epoch
    amp: bool = False  # bf16 autocast in use (CUDA with bf16 support, `train.bf16`)


@dataclass
class _Progress:
    """What carries over between epochs (and across a resume)."""

    start_epoch: int = 0
    best: dict[str, float] = field(default_factory=lambda: {"value": -math.inf, "epoch": 0})
    history: list[dict[str, float]] = field(default_factory=list)
    step_log: list[tuple[int, float, float]] = field(default_factory=list)


def _setup(config: TrialConfig, env: WorkerEnv, data: ImageData) -> _Trial:
    """This rank's shard on the device, and the seeded model, optimizer, schedule and loss."""
    tc, device = config.train, env.device
    # Every rank holds the same number of train images so every rank runs the same steps.
    per_rank = len(data.x_train) // env.world_size
    x_shard, y_shard = shard(data.x_train, data.y_train, env.rank, env.world_size)
    x_shard, y_shard = x_shard[:per_rank].to(device), y_shard[:per_rank].to(device)
    if env.world_size > 1:
        # Every rank holds the whole train set; each epoch it takes its slice of one seeded
        # global permutation (`_epoch_order`), so the ranks' shards change every epoch.
        x_train = data.x_train[: per_rank * env.world_size].to(device)
        y_train = data.y_train[: per_rank * env.world_size].to(device)
    else:
        x_train, y_train = x_shard, y_shard
    x_test, y_test = shard(data.x_test, data.y_test, env.rank, env.world_size)
    # Its own generator: the global RNG (model init, shuffling) is the same with it on or off.
    pick = torch.randperm(per_rank, generator=torch.Generator().manual_seed(tc.seed))
    pick = pick[: tc.eval_train // env.world_size].to(device)

    torch.manual_seed(tc.seed)
    model = build_model(config, data)
    channels_last = tc.channels_last and device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last if channels_last else None)
    optimizer = build_optimizer(model.parameters(), tc.optimizer)
    local_bs = min(max(1, tc.batch_size // env.world_size), per_rank)
    return _Trial(
        config=config,
        env=env,
        data=data,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test.to(device),
        y_test=y_test.to(device),
        x_eval=x_shard[pick],
        y_eval=y_shard[pick],
        model=model,
        net=model,
        optimizer=optimizer,
        schedule=build_schedule(optimizer, tc.lr_schedule, tc.epochs),
        stopper=EarlyStopper(tc.early_stop, None) if tc.early_stop else None,
        loss_fn=build_loss(tc.loss, data.num_classes),
        transform=BatchTransform(data.mean, data.std, list(tc.augment), device, channels_last),
        local_bs=local_bs,
        steps=per_rank // local_bs,
        per_rank=per_rank,
        amp=configure_backends(device, tc.bf16),
    )


def _distributed(env: WorkerEnv) -> bool:
    """True when torch.distributed runs this worker's group of several processes."""
    return dist.is_available() and dist.is_initialized() and env.world_size > 1


def _sync_bn(model: nn.Module, env: WorkerEnv, enabled: bool) -> nn.Module:
    """BatchNorm layers as SyncBatchNorm (statistics over all ranks) when asked and DDP runs.

    The parameters and buffers are the same tensors (the optimizer keeps working) and the
    state dict keys are unchanged (a checkpoint loads into the plain model)."""
    if enabled and _distributed(env):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _wrap(model: nn.Module, env: WorkerEnv, compile_model: bool) -> nn.Module:
    """DDP across ranks when torch.distributed runs several processes; torch.compile if asked."""
    net: nn.Module = model
    if _distributed(env):
        device = env.device
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile_model:
        net = torch.compile(net)
    return net


def _restore(t: _Trial, resume: CheckpointState | None) -> _Progress:
    """Model, optimizer, schedule and early-stopping state from a checkpoint, if any."""
    if not resume:
        return _Progress()
    t.model.load_state_dict(resume["model"])
    t.optimizer.load_state_dict(resume["optimizer"])
    t.schedule.load_state_dict(resume["schedule"])
    if t.stopper and resume.get("stopper"):
        t.stopper.load_state_dict(resume["stopper"])
    return _Progress(resume["epoch"], resume["best"], resume["history"], resume["step_log"])


def _epoch_order(t: _Trial, epoch: int, gen: torch.Generator) -> torch.Tensor:
    """Indices into `t.x_train` this rank trains on in `epoch`, in order.

    One worker: a permutation from the rank's own generator (results unchanged from before
    reshuffling existed). Several: one permutation of the whole train set, seeded by (seed,
    epoch) alike on every rank, and this rank's slice of it."""
    env = t.env
    if env.world_size == 1:
        return torch.randperm(len(t.x_train), generator=gen, device=env.device)
    shared = torch.Generator(device=env.device)
    shared.manual_seed(_epoch_seed(t.config.train.seed, epoch, env.world_size))
    order = torch.randperm(len(t.x_train), generator=shared, device=env.device)
    return order[env.rank * t.per_rank : (env.rank + 1) * t.per_rank]


def _train_epoch(t: _Trial, epoch: int) -> tuple[float, float, list[torch.Tensor]]:
    """One epoch over this rank's shard (reseeded per epoch): mean loss, accuracy, step losses."""
    device, env = t.env.device, t.env
    seed = _epoch_seed(t.config.train.seed, epoch, env.rank)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    t.net.train()
    sums = Batchwise(device, t.data.num_classes, with_confusion=False)
    step_losses = []
    order = _epoch_order(t, epoch, gen)
    # Full batches only (drop_last): BatchNorm1d heads cannot train on a batch of one.
    for step in range(t.steps):
        if step == t.steps // 2 and env.rank == 0:
            faults.hold("mid_epoch", env.trial_id, epoch + 1)
        idx = order[step * t.local_bs : (step + 1) * t.local_bs]
        xb = t.transform(t.x_train[idx], train=True, generator=gen)
        yb = t.y_train[idx]
        with autocast(device, t.amp):
            logits = t.net(xb)
        loss = t.loss_fn(logits.float(), yb)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        sums.add(loss, logits.detach().float(), yb)
        step_losses.append(loss.detach())
    train_loss, train_acc, _ = sums.totals()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return train_loss, train_acc, step_losses


def _evaluate(t: _Trial, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, list[list[int]]]:
    """Mean loss, accuracy and confusion matrix of the model in eval mode over (x, y)."""
    tc = t.config.train
    return evaluate(
        t.model, x, y, t.transform, t.loss_fn, tc.eval_batch_size, t.data.num_classes, t.amp
    )


def _epochs_before(progress: _Progress, first_after_resume: bool) -> dict[str, Any]:
    """On the first report after a resume, the epochs the checkpoint already holds: a result
    can be lost with the process that sent it (Ray Train queues reports), while its
    checkpoint was saved; the driver logs from these the epochs it never saw."""
    if not first_after_resume:
        return {}
    return {"epochs_before": [dict(h) for h in progress.history[: progress.start_epoch]]}


def _bests(history: list[dict[str, float]]) -> dict[str, float]:
    """Best value and its epoch of the train/test loss and accuracy so far (the reports' tables
    give best train error beside best test error); `best_test_acc` is kept by `_Progress`."""
    out: dict[str, float] = {}
    for key, pick in (("train_loss", min), ("train_acc", max), ("test_loss", min)):
        epoch, value = pick(enumerate((h[key] for h in history), start=1), key=lambda p: p[1])
        out[f"best_{key}"], out[f"best_{key}_epoch"] = value, epoch
    return out


def _checkpoint(
    t: _Trial,
    progress: _Progress,
    epoch: int,
    confusion: list[list[int]],
    last: dict[str, Any],
) -> CheckpointState:
    """The state rank 0 saves after `epoch` (1-based): enough to resume and rebuild the model."""
    return {
        "epoch": epoch,
        "model": t.model.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "schedule": t.schedule.state_dict(),
        "stopper": t.stopper.state_dict() if t.stopper else None,
        "best": progress.best,
        "history": progress.history,
        "step_log": progress.step_log,
        "confusion": confusion,
        "meta": model_meta(t.config, t.data),
        "last": {k: v for k, v in last.items() if k != "epochs_before"},
    }


def checkpoint_due(epoch: int, every: int) -> bool:
    """Whether the checkpoint after `epoch` (1-based) is saved (`train.checkpoint_every`);
    the last epoch and a stopping one are saved whatever this says."""
    return epoch % every == 0


def train_trial(
    config: TrialConfig,
    env: WorkerEnv,
    report: Report,
    resume: CheckpointState | None = None,
    data: ImageData | None = None,
) -> dict[str, Any]:
    """Train one trial for its epochs (from `resume` if given); returns the last metrics.

    Each epoch: train (`_train_epoch`), evaluate on the test shard, decide whether to stop
    (diverged, early stopping, last epoch), and `report` the metrics with the checkpoint
    state (rank 0; None elsewhere)."""
    tc = config.train
    check_cuda(env.device)
    t = _setup(config, env, data or load_dataset(config.dataset))
    progress = _restore(t, resume)
    if resume and (resume.get("last") or {}).get("is_last_epoch"):
        # Its training had ended (last epoch, early stop, divergence) but the process died
        # before that end was recorded: report the last result again instead of training on.
        ended = {
            **resume["last"],
            "resumed_from": resume["epoch"],
            **_epochs_before(progress, True),
        }
        report(ended, None)
        return ended
    t.model = _sync_bn(t.model, env, tc.sync_bn)
    t.net = _wrap(t.model, env, tc.compile)  # after the restore, as DDP syncs from rank 0
    host = socket.gethostname()
    num_params = sum(p.numel() for p in t.model.parameters())
    metrics: dict[str, Any] = {}
    for epoch in range(progress.start_epoch, tc.epochs):
        lr = t.schedule.lr
        t0 = time.perf_counter()
        train_loss, train_acc, step_losses = _train_epoch(t, epoch)
        train_time = time.perf_counter() - t0
        test_loss, test_acc, confusion = _evaluate(t, t.x_test, t.y_test)
        clean: dict[str, float] = {}
        if tc.eval_train:
            eval_loss, eval_acc, _ = _evaluate(t, t.x_eval, t.y_eval)
            clean = {"train_eval_loss": eval_loss, "train_eval_acc": eval_acc}
        epoch_time = time.perf_counter() - t0
        diverged = not (math.isfinite(train_loss) and math.isfinite(test_loss))
        if test_acc > progress.best["value"]:
            progress.best = {"value": test_acc, "epoch": epoch + 1}
        epoch_metrics = {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            **clean,
            "gap": clean.get("train_eval_acc", train_acc) - test_acc,
            "lr": lr,
            "epoch_time_s": epoch_time,
            "images_per_s": t.steps * t.local_bs * env.world_size / max(train_time, 1e-9),
        }
        stop_early = bool(t.stopper and not diverged and t.stopper.update(epoch + 1, epoch_metrics))
        t.schedule.step(epoch_metrics)
        done = diverged or stop_early or epoch + 1 == tc.epochs
        progress.history.append(epoch_metrics)
        metrics = {
            **epoch_metrics,
            **_bests(progress.history),
            "train_time_s": sum(h["epoch_time_s"] for h in progress.history),
            "num_params": num_params,
            "epoch": epoch + 1,
            "best_test_acc": progress.best["value"],
            "best_epoch": progress.best["epoch"],
            "stopped_early": int(stop_early),
            "diverged": int(diverged),
            # Not "done": Tune reads a truthy "done" as "trial over" and kills the trial actor
            # before Ray Train has released its workers (the placement group then leaks).
            "is_last_epoch": int(done),
            # The checkpoint epoch this run of the loop started from (first report only), so
            # the driver can say that a restarted worker or a resumed sweep went on from there.
            "resumed_from": progress.start_epoch if resume and epoch == progress.start_epoch else 0,
            **_epochs_before(progress, resume is not None and epoch == progress.start_epoch),
            "node_id": env.node_id,
            "host": host,
            "device": str(env.device),
            "world_size": env.world_size,
        }
        state: CheckpointState | None = None
        if env.rank == 0:
            # step losses are gathered every epoch; only the checkpoint is skipped between
            losses = torch.stack(step_losses).float().cpu().tolist() if step_losses else []
            progress.step_log.extend((epoch + 1, lr, value) for value in losses)
            if done or checkpoint_due(epoch + 1, tc.checkpoint_every):
                state = _checkpoint(t, progress, epoch + 1, confusion, metrics)
        report(metrics, state)
        if done:
            break
    return metrics
