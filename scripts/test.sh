#!/usr/bin/env bash
# The README's test command: install the locked environment, lint and format-check, then every
# test, the slow end-to-end ones included (pass -m "not slow" to skip those locally).
set -euo pipefail
cd "$(dirname "$0")/.."
# Python writes the bytecode of what it imports into .venv once (scripts/bootstrap.sh says
# why it does not compile everything), also where the environment says not to.
unset PYTHONDONTWRITEBYTECODE
./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two pytest-xdist workers (tests/split.py says how they share the suite); `-n 0` runs serially.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "$@"
