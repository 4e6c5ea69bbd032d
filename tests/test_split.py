"""The suite's split between xdist workers (tests/split.py) names what exists."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.split import GROUP_SECONDS, SHARED_SWEEP, SHARED_SWEEP_MODULES, group_of


def test_the_shared_sweeps_modules_are_the_ones_that_use_it() -> None:
    uses = {
        path.name
        for path in (ROOT / "tests").glob("test_*.py")
        if re.search(r"def test_\w+\([^)]*\bcli_sweep\b", path.read_text(), re.S)
    }
    assert uses == SHARED_SWEEP_MODULES


def test_every_heavy_group_exists_and_a_test_id_finds_its_group() -> None:
    modules = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    assert set(GROUP_SECONDS) - {SHARED_SWEEP} <= modules
    assert group_of("tests/test_e2e.py::test_mlflow_layout") == SHARED_SWEEP
    assert group_of("tests/test_multinode.py::test_x[inline]") == "test_multinode.py"
