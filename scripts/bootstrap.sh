#!/usr/bin/env bash
# Install the locked environment into .venv (bootstrapping uv through pip if needed). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1; then
  uv sync --frozen --quiet --compile-bytecode
else
  python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
  python3 -m uv sync --frozen --quiet --compile-bytecode
fi
# raysweep's own modules as bytecode too (uv compiles only the installed packages): where
# PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile them at each import.
.venv/bin/python -m compileall -q raysweep >/dev/null
