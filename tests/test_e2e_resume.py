"""Ctrl-C, then a killed driver (SIGKILL of its whole session), each followed by `--resume`,
then the process training a trial killed by pid: finished trials are not rerun, unfinished ones
continue from their checkpoints, and MLflow keeps exactly one run per trial with none left
RUNNING. Trials train inline (the default for one worker): Tune retries the killed process.
The TorchTrainer path's resume is in tests/test_e2e.py (DDP), its worker retry in
tests/test_multinode.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import signal_when, start_cli

pytestmark = pytest.mark.slow


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process under `root` (local Ray runs under its driver)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, ValueError, IndexError):
            continue
        parents[pid], commands[pid] = ppid, cmd
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        current = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == current and pid not in found:
                found[pid] = commands[pid]
                frontier.append(pid)
    return found


def _worker_pid_when(
    proc: subprocess.Popen, log: Path, needle: str, title: str, timeout: float
) -> int:
    """The pid of the sweep's (one) process titled `title`, once `needle` shows in the log."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in log.read_text():
            workers = [pid for pid, cmd in _descendants(proc.pid).items() if cmd.startswith(title)]
            assert len(workers) == 1, _descendants(proc.pid)
            return workers[0]
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before '{needle}':\n{log.read_text()}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"'{needle}' never appeared:\n{log.read_text()}")


def test_interrupted_and_killed_sweep_resumes_without_duplicate_runs(
    write_sweep, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_sweep(
        {
            "name": "e2e-resume",
            "model": {"name": "basic_cnn"},
            "train": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1e-3}},
            "sweep": {"axes": {"train.seed": [0, 1]}},
            "resources": {
                "workers_per_trial": 1,
                "cpus_per_worker": 1,
                "max_concurrent": 1,
            },
        }
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = ["run", str(spec), "--storage", str(tmp_path / "ray")]

    # 1. Ctrl-C once during t000: it stops cleanly, t000 is KILLED, the way back is printed.
    log1 = tmp_path / "1.log"
    first = signal_when(start_cli(run, tmp_path, log1), log1, "t000 epoch 1/4", signal.SIGINT, 600)
    assert "--resume" in first, first
    killed = client.search_runs(
        [client.get_experiment_by_name("e2e-resume").experiment_id],
        "tags.`raysweep.trial_id` = 't000'",
    )
    assert [r.info.status for r in killed] == ["KILLED"]

    # 2. Resume, then kill the driver's whole session (as a crash or reboot would) during t001.
    log2 = tmp_path / "2.log"
    second = signal_when(
        start_cli([*run, "--resume"], tmp_path, log2), log2, "t001 epoch 1/4", signal.SIGKILL, 600
    )
    assert "t000 finished" in second
    assert "t000 epoch 1/4" not in second  # t000 went on from its epoch-1 checkpoint
    assert "t000 resumed   from its epoch-" in second

    # 3. Resume again: t000 is not rerun, t001 continues from its checkpoint; then the process
    #    training t001 is killed by pid: Tune restarts the trial from its latest checkpoint
    #    (max_failures); it finishes without gaps or repeats.
    log3 = tmp_path / "3.log"
    proc = start_cli([*run, "--resume"], tmp_path, log3)
    victim = _worker_pid_when(proc, log3, "t001 epoch 2/4", "ray::ImplicitFunc", 600)
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=900) == 0, log3.read_text()
    third = log3.read_text()
    # t000 is not trained again (Tune may start it to replay its last result, if the driver
    # died before MLflow had all of it; then the record is completed, nothing retrained).
    assert "t000 epoch" not in third, third
    assert "t001 epoch 1/4" not in third
    assert "t001 resumed   from its epoch-1 checkpoint" in third, third
    assert "t001 resumed   from its epoch-2 checkpoint" in third, third  # the killed process
    assert "t001 epoch 4/4" in third

    exp = client.get_experiment_by_name("e2e-resume")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.data.tags["raysweep.trial_id"] for r in children) == ["t000", "t001"]
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")]
        assert sorted(steps) == [1, 2, 3, 4], steps
