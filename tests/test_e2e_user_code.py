"""End to end: a sweep whose model comes from a file next to the sweep file and whose dataset
comes from a factory; MLflow records FINISHED runs and the logged model loads in a fresh
process where the user's file cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

NETS = '''
"""The user's model."""
from torch import nn


class TinyNet(nn.Module):
    """A small CNN from the user's own file."""

    def __init__(self, in_channels, num_classes, image_size, width=16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(width * (image_size // 2) ** 2, num_classes),
        )

    def forward(self, x):
        return self.body(x)
'''

DATA = '''
"""The user's data: scikit-learn's digits as floats in [0, 1], N x H x W."""
import numpy as np


def load_digits_float(limit=600):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:limit]
    y = bunch.target[:limit]
    cut = len(x) * 4 // 5
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:],
            "classes": [str(i) for i in range(10)]}
'''


def test_user_model_and_dataset_sweep(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "nets.py").write_text(NETS)
    (code / "data.py").write_text(DATA)
    sweep = {
        "name": "e2e-user-code",
        "dataset": {
            "name": "data.py:load_digits_float",
            "image_size": 16,
            "limit": 600,
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"name": "nets.py:TinyNet", "width": 8},
        "train": {"epochs": 2, "batch_size": 64, "bf16": False, "channels_last": False},
        "sweep": {"axes": {"model.width": [4, 8]}},
        "resources": {"cpus_per_worker": 1},
    }
    (code / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    work = tmp_path / "work"  # run from elsewhere: the refs resolve against the sweep file
    work.mkdir()
    proc = run_cli(["run", str(code / "sweep.yaml"), "--storage", str(tmp_path / "ray")], work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e-user-code")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.params["model.name"] for r in children} == {f"{code / 'nets.py'}:TinyNet"}
    run_id = children[0].info.run_id

    # A fresh process, elsewhere, with the user's directory gone: the model still loads.
    (code / "nets.py").rename(tmp_path / "moved-nets.py")
    load = textwrap.dedent(f"""
        import sys, mlflow, torch
        mlflow.set_tracking_uri({uri!r})
        model = mlflow.pytorch.load_model("runs:/{run_id}/model", map_location="cpu")
        out = model(torch.zeros(2, 1, 16, 16))
        assert tuple(out.shape) == (2, 10), out.shape
        assert not any(m.startswith(("nets", "raysweep_user")) for m in sys.modules), "user code"
        print("loaded")
    """)
    result = subprocess.run(
        [sys.executable, "-c", load], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-3000:]
