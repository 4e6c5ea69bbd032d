"""Run sweep files end to end and check what MLflow holds afterwards (CI: experiments/cpu_smoke).

For each file: `raysweep run` must exit 0, and the sweep's parent run must hold exactly one child
run per planned trial (same trial ids), none failed, killed or still running, plus the summary
and plots. Prints one JSON line per file and a final JSON summary; exits 1 if any file failed.

    .venv/bin/python scripts/smoke.py [SWEEP.yaml ...]   # default: experiments/cpu_smoke/*.yaml
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAYSWEEP = ROOT / ".venv" / "bin" / "raysweep"
BAD_STATUSES = {"failed", "killed", "running", "not started"}
PARENT_ARTIFACTS = {"sweep.yaml", "plan.json", "summary.parquet", "summary.csv", "summary.md"}


def check(spec: Path, work: Path) -> dict:
    """Run one sweep file in `work` and return what was found (`ok` says whether it passed)."""
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_spec
    from raysweep.mlflow_read import export_table, find_parent, open_store
    from raysweep.plan import expand

    sweep, _ = load_spec(spec, ())
    planned = sorted(t.trial_id for t in expand(sweep, str(spec)))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    proc = subprocess.run(
        [str(RAYSWEEP), "run", str(spec), "--tracking-uri", uri, "--storage", str(work / "ray")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    result: dict = {
        "file": str(spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec),
        "exit_code": proc.returncode,
        "planned": len(planned),
        "wall_s": round(time.time() - t0, 1),
    }
    problems = []
    if proc.returncode != 0:
        problems.append(f"exit code {proc.returncode}")
    try:
        table = export_table(uri, sweep.name)
        runs = sorted(table["trial_id"])
        bad = sorted(
            f"{t}:{s}"
            for t, s in zip(table["trial_id"], table["status"], strict=True)
            if s in BAD_STATUSES
        )
        parent = find_parent(open_store(sweep.name, uri))
        artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id)}
        result.update(runs=len(runs), statuses=sorted(set(table["status"])))
        if runs != planned:
            problems.append(f"trial runs {runs} != planned {planned}")
        if bad:
            problems.append(f"trials not finished: {bad}")
        if missing := PARENT_ARTIFACTS - artifacts:
            problems.append(f"parent run lacks {sorted(missing)}")
        if not any(a.endswith(".png") for a in artifacts):
            problems.append("parent run has no plots")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other files still run
        problems.append(f"reading MLflow: {exc}")
    result["ok"] = not problems
    if problems:
        result["problems"] = problems
        result["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
    return result


def main(argv: list[str]) -> int:
    """Check every file given (default: experiments/cpu_smoke/*.yaml)."""
    specs = [Path(a).resolve() for a in argv] or sorted(
        (ROOT / "experiments/cpu_smoke").glob("*.yaml")
    )
    results = []
    for spec in specs:
        with tempfile.TemporaryDirectory(prefix="raysweep-smoke-") as tmp:
            result = check(spec, Path(tmp))
        results.append(result)
        print(json.dumps(result), flush=True)
    failed = [r["file"] for r in results if not r["ok"]]
    print(
        json.dumps(
            {
                "files": len(results),
                "failed": failed,
                "wall_s": round(sum(r["wall_s"] for r in results), 1),
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
