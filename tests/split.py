"""How the suite is split between pytest-xdist's workers (scripts/test.sh runs two).

A worker takes whole groups: a test module, or the modules that share the session's costly
fixtures (the one real `raysweep run`, `cli_sweep`, and the 48-trial report, `big_report`:
tests/conftest.py), so that each is made once, and a module's fixtures (test_multinode's
two-node cluster, a tracking server) start once. The groups are handed out
longest first, so the two workers end at about the same time.

xdist's own `--dist loadgroup` marks cannot do this here: it renames tests by writing
`item._nodeid`, which pytest 9.2 no longer reads. This plugin gives xdist a scheduler that
groups by module name instead (`pytest_xdist_make_scheduler`), and orders each worker's
collection, which xdist requires to be the same on every worker, by `GROUP_SECONDS`.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

# The session fixtures made once for several modules, and the group of the modules whose tests
# use them (a worker that meets one makes them).
SHARED = "shared"
SHARED_FIXTURES = ("cli_sweep", "big_report")
SHARED_MODULES = frozenset(
    {
        "test_browser.py",
        "test_compare_e2e.py",
        "test_e2e.py",
        "test_e2e_quiet_and_report.py",
        "test_report_scale.py",
    }
)
# Seconds each heavy group took on the 2-core reference machine (`--durations`, one worker):
# they go out in that order, longest first. A group not named here is light (seconds) and goes
# after these, in collection order.
GROUP_SECONDS = {
    "test_multinode.py": 210,
    "test_e2e_executors.py": 150,
    "test_e2e_recovery.py": 120,
    SHARED: 100,
    "test_e2e_tracking_outage.py": 60,
    "test_benchmarks.py": 30,
    "test_tracking_outage.py": 30,
    "test_e2e_search.py": 30,
}


def group_of(nodeid: str) -> str:
    """The group of a test id (`tests/test_x.py::test_y[param]`)."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return SHARED if module in SHARED_MODULES else module


class ByGroup(LoadScopeScheduling):
    """xdist's scope scheduling, a scope being a group (`group_of`), in collection order."""

    def __init__(self, config: pytest.Config, log=None) -> None:  # noqa: ANN001 - xdist's Producer
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep the longest-first collection order

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> ByGroup:  # noqa: ANN001
    """The scheduler for any `-n N` run of this suite."""
    return ByGroup(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the heavy groups first, longest first; and a test that uses a shared
    fixture outside `SHARED_MODULES` is an error (its worker would make it again)."""
    if not hasattr(config, "workerinput"):
        return
    for item in items:
        shared = set(SHARED_FIXTURES) & set(getattr(item, "fixturenames", ()))
        if shared and group_of(item.nodeid) != SHARED:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(shared))}: add its module to "
                "SHARED_MODULES in tests/split.py"
            )
    longest_first = sorted(GROUP_SECONDS, key=GROUP_SECONDS.__getitem__, reverse=True)
    order = {group: i for i, group in enumerate(longest_first)}
    items.sort(key=lambda item: order.get(group_of(item.nodeid), len(order)))
