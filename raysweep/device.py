"""The device a worker trains on: is its GPU usable (driver vs the CUDA build), which backend
flags to set, and when to autocast to bf16.

Nothing here runs on a CPU-only machine except the checks that say so; the GPU branches are
covered by tests that stand in for CUDA (tests/test_gpu_path.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import torch

log = logging.getLogger(__name__)

# The oldest Linux driver branch each CUDA major version of torch's wheels runs on (NVIDIA's
# CUDA toolkit release notes, "minimum required driver version"); the locked torch is cu132.
MIN_DRIVER = {12: (525, 60), 13: (580, 65)}
DRIVER_VERSION_FILE = "/proc/driver/nvidia/version"


def driver_version(path: str = DRIVER_VERSION_FILE) -> tuple[int, ...] | None:
    """The NVIDIA kernel driver's version on this node (e.g. (580, 65, 6)), None if unknown."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def driver_problem(cuda: str | None, driver: tuple[int, ...] | None, available: bool) -> str | None:
    """Why torch (built for CUDA `cuda`) cannot use this node's GPUs, or None if it can."""
    if not cuda:
        return "this torch is a CPU-only build: install the locked CUDA build (uv sync)"
    major = int(cuda.split(".")[0])
    need = MIN_DRIVER.get(major)
    found = ".".join(map(str, driver)) if driver else "none found"
    if need and driver and driver[:2] < need:
        return (
            f"torch is built for CUDA {cuda}, which needs NVIDIA driver "
            f"{'.'.join(map(str, need))} or newer (R{need[0]}+), but this node has {found}: "
            "upgrade the node's driver or use a node image that has it (cluster.yaml, "
            "docs/cluster.md), or install a torch built for an older CUDA"
        )
    if not available:
        return (
            f"torch (CUDA {cuda}) finds no usable GPU (NVIDIA driver: {found}; "
            f"needs R{need[0]}+ for CUDA {major}): check `nvidia-smi` on this node"
            if need
            else f"torch (CUDA {cuda}) finds no usable GPU (NVIDIA driver: {found})"
        )
    return None


def check_cuda(device: torch.device) -> None:
    """Fail at worker start, naming the driver, where this node cannot run the CUDA build.

    Ray hands out a node's GPUs whatever its driver; without this check an old driver shows up
    as a bare CUDA error at the first `.to("cuda")`."""
    if device.type != "cuda":
        return
    problem = driver_problem(torch.version.cuda, driver_version(), torch.cuda.is_available())
    if problem:
        raise RuntimeError(f"cannot train on {device}: {problem}")


def configure_backends(device: torch.device, bf16: bool) -> bool:
    """Set this run's backend flags; True when bf16 autocast is used.

    Set per run (not left from a previous trial in a reused process): cudnn.benchmark on CUDA
    only; bf16 autocast only where the GPU supports it (else fp32 with a note); TF32 matmuls
    and convolutions when training in fp32 on CUDA. CPU runs keep exact fp32 matmuls."""
    if device.type != "cuda":
        torch.backends.cudnn.benchmark = False
        return False
    torch.backends.cudnn.benchmark = True
    amp = bf16 and torch.cuda.is_bf16_supported()
    if bf16 and not amp:
        log.warning(
            "train.bf16: %s does not support bfloat16; training in fp32 (TF32 matmuls)",
            torch.cuda.get_device_name(device),
        )
    torch.backends.cuda.matmul.allow_tf32 = not amp
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest" if amp else "high")
    return amp


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when `enabled`; nothing elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
