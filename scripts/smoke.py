"""Run sweep files end to end and check what MLflow holds afterwards (CI: experiments/cpu_smoke).

For each file: `raysweep run` must exit 0, and the sweep's parent run must hold exactly one child
run per planned trial (same trial ids, params equal to the planned config), none failed, killed
or still running, plus the summary and plots. Prints one JSON line per file and a final JSON
summary; exits 1 if any file failed.

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


def inspect(spec: Path, uri: str) -> tuple[dict, list[str]]:
    """What MLflow at `uri` holds for the sweep in `spec`, and what is wrong with it."""
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_spec
    from raysweep.plan import expand
    from raysweep.report.export import export_table
    from raysweep.report.store import find_parent, open_store
    from raysweep.tracking import trial_params

    sweep, _ = load_spec(spec, ())
    trials = expand(sweep, str(spec))
    planned = sorted(t.trial_id for t in trials)
    found: dict = {"planned": len(planned)}
    problems = []
    try:
        table = export_table(uri, sweep.name)
        runs = sorted(table["trial_id"])
        found.update(runs=len(runs), statuses=sorted(set(table["status"])))
        if runs != planned:
            problems.append(f"trial runs {runs} != planned {planned}")
        bad = [f"{t}:{s}" for t, s in zip(table["trial_id"], table["status"], strict=True)]
        if bad := sorted(b for b in bad if b.split(":", 1)[1] in BAD_STATUSES):
            problems.append(f"trials not finished: {bad}")
        client = MlflowClient(uri)
        # Each trial's run holds exactly the config the plan resolved for it (ofat/grid contents).
        run_ids = dict(zip(table["trial_id"], table["run_id"], strict=True))
        for trial in trials:
            if trial.trial_id in run_ids:
                logged = client.get_run(run_ids[trial.trial_id]).data.params
                wanted = trial_params(trial.config.model_dump(mode="json"))
                if diff := sorted(k for k in wanted if logged.get(k) != wanted[k]):
                    problems.append(f"{trial.trial_id}: params differ from the plan: {diff}")
        parent = find_parent(open_store(sweep.name, uri))
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        if missing := PARENT_ARTIFACTS - artifacts:
            problems.append(f"parent run lacks {sorted(missing)}")
        if not any(a.endswith(".png") for a in artifacts):
            problems.append("parent run has no plots")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other files still run
        problems.append(f"reading MLflow: {exc}")
    return found, problems


def check(spec: Path, work: Path) -> dict:
    """Run one sweep file in `work` and return what was found (`ok` says whether it passed)."""
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
        "wall_s": round(time.time() - t0, 1),
    }
    found, problems = inspect(spec, uri)
    result.update(found)
    if proc.returncode != 0:
        problems.insert(0, f"exit code {proc.returncode}")
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
