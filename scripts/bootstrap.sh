#!/usr/bin/env bash
# Install the locked environment into .venv (bootstrapping uv through pip if needed). Idempotent.
#
# No `--compile-bytecode`: uv would compile all ~18,000 modules of the environment (about
# 60 CPU-s, half a minute of a fresh clone on 2 cores), of which a sweep imports ~4,500. The
# scripts that call this one instead let Python write the bytecode of what it imports, once,
# into .venv (`unset PYTHONDONTWRITEBYTECODE` there; docs/performance.md says why it matters).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1; then
  uv sync --frozen --quiet
else
  python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
  python3 -m uv sync --frozen --quiet
fi
# raysweep's own modules as bytecode (a few dozen, ~1 s): they change between commits, and a
# process run with PYTHONDONTWRITEBYTECODE set would otherwise compile them at each import.
.venv/bin/python -m compileall -q raysweep >/dev/null
