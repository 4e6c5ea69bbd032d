"""Import boundaries, checked over every module of the package: no module-level import cycle,
and the modules the CLI's light commands use load neither torch nor Ray (nor MLflow)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raysweep"

# What `raysweep --help / validate / plan` and the records every module shares may import.
TORCH_FREE = (
    "raysweep.cli",
    "raysweep.cli_errors",
    "raysweep.config",
    "raysweep.errors",
    "raysweep.faults",
    "raysweep.models.registry",
    "raysweep.outcome_report",
    "raysweep.plan",
    "raysweep.planview",
    "raysweep.ranking",
    "raysweep.ray_session",
    "raysweep.records",
    "raysweep.yamlpaths",
    "raysweep.resources",
    "raysweep.searchspace",
    "raysweep.sections",
    "raysweep.storage",
    "raysweep.trial_dirs",
    "raysweep.write_queue",
)
HEAVY = ("torch", "ray", "mlflow", "pandas", "matplotlib")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports at module level (not inside functions, not for
    type checking only)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{node.module}"
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def test_no_module_level_import_cycle() -> None:
    modules = _modules()
    graph = {n: _module_level_imports(n, p, set(modules)) for n, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # The walk sees the package's real edges (a walk that found none would prove nothing).
    assert {"raysweep.sweep", "raysweep.records"} <= graph["raysweep.runner"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_light_modules_import_nothing_heavy(module: str) -> None:
    code = (
        f"import sys, json; import {module}; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == [], f"{module} imports {out.strip()}"
