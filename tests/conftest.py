"""Shared fixtures: a digits cache shared by the whole session, and a sweep-file writer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RAYSWEEP = ROOT / ".venv" / "bin" / "raysweep"


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tensor cache for every test that trains on digits (decoded once per session)."""
    return tmp_path_factory.mktemp("tensor-cache")


@pytest.fixture
def write_sweep(tmp_path: Path, digits_cache: Path):
    """Write a digits sweep file into tmp_path from a dict; returns its path."""

    def write(body: dict, name: str = "sweep.yaml") -> Path:
        data = dict(body)
        data.setdefault("dataset", {"name": "digits", "image_size": 32})
        data["dataset"] = {**data["dataset"], "cache_dir": str(digits_cache)}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
