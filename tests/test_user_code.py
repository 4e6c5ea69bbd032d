"""User code in a sweep file: model and dataset factories from a file or a module (fast tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from raysweep import user_code
from raysweep.config import ConfigError, load_spec
from raysweep.errors import DatasetError, UnknownModelError
from raysweep.models import create_model
from raysweep.models.registry import check_model_kwargs
from raysweep.sections import DatasetSpec
from tests.conftest import run_cli

NETS = '''
"""Tiny user models."""
from torch import nn


class TinyNet(nn.Sequential):
    """A two-layer CNN from the user."""

    def __init__(self, in_channels, num_classes, image_size, width=16):
        super().__init__(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(width, num_classes),
        )


def broken(*, in_channels, num_classes, image_size):
    """Raises."""
    raise RuntimeError("boom")


def not_a_module(in_channels, num_classes, image_size, depth: int = 2):
    return 3


def helper(x):
    return x
'''

DATA = """
import numpy as np


def load_scans(path, n=40, as_float=True):
    rng = np.random.default_rng(0)
    x = rng.random((n, 12, 12)).astype(np.float32)
    if not as_float:
        x = (x * 255).astype(np.uint8)
    y = np.arange(n) % 3
    return x, y, x[:9], y[:9], ["a", "b", "c"]


def bad(path=None):
    return 42
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A sweep directory with nets.py, data.py and a sweep file using both."""
    (tmp_path / "nets.py").write_text(NETS)
    (tmp_path / "data.py").write_text(DATA)
    sweep = {
        "name": "uc",
        "model": {"name": "nets.py:TinyNet", "width": 8},
        "dataset": {
            "name": "data.py:load_scans",
            "path": str(tmp_path),
            "n": 30,
            "cache_dir": str(tmp_path / "cache"),
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return tmp_path


def test_refs_resolve_against_the_sweep_file(project: Path, monkeypatch) -> None:
    monkeypatch.chdir("/")
    spec, _ = load_spec(project / "sweep.yaml")
    assert spec.model.name == f"{project / 'nets.py'}:TinyNet"
    assert spec.dataset.name == f"{project / 'data.py'}:load_scans"
    assert spec.dataset.kwargs == {"n": 30}
    assert spec.base_dict()["model"]["name"].startswith("/")


def test_refs_in_axes_and_modules_resolve(tmp_path: Path) -> None:
    data = {
        "model": {"name": "nets.py:A"},
        "sweep": {
            "axes": {"model": [{"name": "sub/x.py:B"}, {"name": "lenet"}]},
            "studies": [{"set": {"model.name": "pkg.mod:C"}}],
        },
    }
    user_code.resolve_refs(data, tmp_path)
    assert data["model"]["name"] == f"{tmp_path / 'nets.py'}:A"
    assert data["sweep"]["axes"]["model"][0]["name"] == f"{tmp_path / 'sub/x.py'}:B"
    assert data["sweep"]["axes"]["model"][1]["name"] == "lenet"
    assert data["sweep"]["studies"][0]["set"]["model.name"] == "pkg.mod:C"


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"widht": 3}, "did you mean 'width'?"),
        ({"width": "wide"}, "width must be an integer"),
    ],
)
def test_model_kwargs_are_checked_from_source(project: Path, kwargs, expect) -> None:
    with pytest.raises(UnknownModelError, match=expect):
        check_model_kwargs(f"{project / 'nets.py'}:TinyNet", kwargs)


def test_missing_file_factory_and_standard_kwargs(project: Path) -> None:
    with pytest.raises(UnknownModelError, match="no such file"):
        check_model_kwargs(f"{project / 'nope.py'}:TinyNet", {})
    with pytest.raises(UnknownModelError, match="did you mean 'TinyNet'"):
        check_model_kwargs(f"{project / 'nets.py'}:TinyNte", {})
    with pytest.raises(UnknownModelError, match="must take in_channels"):
        check_model_kwargs(f"{project / 'nets.py'}:helper", {})


def test_module_refs_are_found_without_executing_them(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "mylab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('executed')\n")
    (pkg / "models.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    check_model_kwargs("mylab.models:TinyNet", {"width": 4})
    with pytest.raises(UnknownModelError, match="did you mean 'width'"):
        check_model_kwargs("mylab.models:TinyNet", {"wdth": 4})
    with pytest.raises(UnknownModelError, match="cannot find module"):
        check_model_kwargs("mylab.nothing:TinyNet", {})


def test_create_model_builds_and_reports_bad_factories(project: Path) -> None:
    model = create_model(f"{project / 'nets.py'}:TinyNet", in_channels=1, num_classes=3, width=4)
    assert model[0].out_channels == 4
    with pytest.raises(UnknownModelError, match="raised RuntimeError: boom"):
        create_model(f"{project / 'nets.py'}:broken")
    with pytest.raises(UnknownModelError, match="returned int, not a torch.nn.Module"):
        create_model(f"{project / 'nets.py'}:not_a_module")


def test_dataset_factory_loads_through_the_cache(project: Path) -> None:
    from raysweep.data import load_dataset
    from raysweep.data.cache import cache_path

    spec, _ = load_spec(project / "sweep.yaml")
    data = load_dataset(spec.dataset)
    assert data.x_train.dtype.is_floating_point is False
    assert tuple(data.x_train.shape) == (30, 1, 12, 12)
    assert data.classes == ["a", "b", "c"] and len(data.x_test) == 9
    path = cache_path(spec.dataset)
    assert path.is_file() and path.name.startswith("data_load_scans-")
    other = spec.dataset.model_copy(update={"kwargs": {"n": 31}})
    assert cache_path(other) != path  # kwargs are in the key
    (project / "data.py").write_text(DATA + "\n# edited\n")
    assert cache_path(spec.dataset) != path  # so is the file's content


def test_dataset_factory_errors(project: Path) -> None:
    from raysweep.data import load_dataset

    base = {"path": str(project), "cache_dir": str(project / "cache")}
    with pytest.raises(ValueError, match="did you mean 'n'"):
        DatasetSpec(name=f"{project / 'data.py'}:load_scans", nn=3, **base)
    spec = DatasetSpec(name=f"{project / 'data.py'}:bad", **base)
    with pytest.raises(DatasetError, match="returned int"):
        load_dataset(spec)
    with pytest.raises(ValueError, match="takes no kwargs"):
        DatasetSpec(name="digits", kwargs={"n": 1})


def test_validate_and_plan_never_import_torch(project: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from raysweep.commands import run_validate
        run_validate({str(project / "sweep.yaml")!r}, ())
        assert "torch" not in sys.modules, "torch was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    bad = project / "bad.yaml"
    bad.write_text((project / "sweep.yaml").read_text().replace("width: 8", "widht: 8"))
    proc = run_cli(["validate", str(bad)], cwd=project)
    assert proc.returncode == 2 and "did you mean 'width'" in proc.stderr
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        load_spec(bad)


def test_models_file_lists_factories(project: Path) -> None:
    proc = run_cli(["models", "--file", "nets.py", "--input", "1x12x12", "--json"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"nets.py:TinyNet", "nets.py:broken", "nets.py:not_a_module"}
    assert rows["nets.py:TinyNet"]["params"] == 1 * 16 * 9 + 16 + 16 * 10 + 10
    assert rows["nets.py:TinyNet"]["kwargs"] == {"width": 16}
    assert rows["nets.py:broken"]["params"] is None


def test_staged_files_are_found_when_the_original_is_gone(project: Path, monkeypatch) -> None:
    user_code.source_path(f"{project / 'nets.py'}:TinyNet")
    env = user_code.runtime_env()
    (staged,) = env["py_modules"]
    monkeypatch.syspath_prepend(str(Path(staged).parent))
    moved = project.parent / (project.name + "-gone")
    project.rename(moved)
    try:
        found = user_code.locate(project / "nets.py")
        assert found.is_file() and found.read_text() == NETS
    finally:
        moved.rename(project)


def test_float_images_become_uint8() -> None:
    from raysweep.data.formats.npz import _npz_images

    out = _npz_images(np.ones((2, 4, 4), dtype=np.float32), Path("x"), "x")
    assert out.dtype.is_floating_point is False and int(out.max()) == 255
