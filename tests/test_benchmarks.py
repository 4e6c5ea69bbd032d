"""The benchmark scripts' dry modes and sweep files (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_gpu_check_epoch_dry_prints_one_json_line(capsys) -> None:
    import gpu_check

    gpu_check.epoch_check(dry=True)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["check"] == "epoch" and record["device"] == "cpu" and record["images"] == 64


def test_gpu_check_pack_sweeps_are_valid_and_the_same_trials() -> None:
    import gpu_check

    from raysweep.config import validate_spec
    from raysweep.plan import expand

    full = gpu_check.pack_specs(dry=False, cache=Path("/tmp/unused"))
    assert full["packed"]["resources"]["gpus_per_worker"] == 0.25
    assert full["serial"]["resources"]["max_concurrent"] == 1
    trials = {m: expand(validate_spec(s)) for m, s in full.items()}
    assert len(trials["packed"]) == len(trials["serial"]) == 4
    assert [t.config for t in trials["packed"]] == [t.config for t in trials["serial"]]


def test_vs_tune_trains_the_same_trials_as_the_sweep() -> None:
    import vs_tune

    from raysweep.config import validate_spec
    from raysweep.plan import expand

    trials = expand(validate_spec(vs_tune.SPEC))
    assert len(trials) == 8
    assert sorted(vs_tune.hand_grid()) == sorted(
        (t.config.train.optimizer.lr, t.config.train.seed) for t in trials
    )


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_in_dry_mode() -> None:
    proc = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r.get("check", r.get("benchmark")) for r in records] == [
        "loop",
        "epoch",
        "pack",
        "smoke",
    ]
