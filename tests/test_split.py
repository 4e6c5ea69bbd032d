"""The suite's split between xdist workers (tests/split.py) names what exists."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.split import GROUP_SECONDS, SHARED, SHARED_FIXTURES, SHARED_MODULES, group_of


def test_the_shared_groups_modules_are_the_ones_that_use_its_fixtures() -> None:
    names = "|".join(SHARED_FIXTURES)
    uses = {
        path.name
        for path in (ROOT / "tests").glob("test_*.py")
        if re.search(rf"def test_\w+\([^)]*\b(?:{names})\b", path.read_text(), re.S)
    }
    assert uses == SHARED_MODULES


def test_every_heavy_group_exists_and_a_test_id_finds_its_group() -> None:
    modules = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    assert set(GROUP_SECONDS) - {SHARED} <= modules
    assert group_of("tests/test_e2e.py::test_mlflow_layout") == SHARED
    assert group_of("tests/test_report_scale.py::test_x") == SHARED
    assert group_of("tests/test_multinode.py::test_x[inline]") == "test_multinode.py"
