"""The driver's warm-up of model logging (raysweep.artifacts.warm_up): it saves a model the way
a trial's is logged, leaves the export lock free for the writer, and never loads torch._dynamo
(trials export their own models: raysweep.exported)."""

from __future__ import annotations

import json
import subprocess
import sys

from raysweep import artifacts


def test_warm_up_saves_a_model_and_frees_the_export_lock() -> None:
    assert artifacts.warm_up()
    assert not artifacts.EXPORT_LOCK.locked()


def test_warm_up_imports_no_torch_dynamo() -> None:
    code = (
        "import json, sys\n"
        "from raysweep.artifacts import warm_up\n"
        "done = warm_up()\n"
        "print(json.dumps([done, 'torch._dynamo' in sys.modules, 'mlflow.pytorch' in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [True, False, True]
