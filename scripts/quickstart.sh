#!/usr/bin/env bash
# The README's main job: install the locked environment, then run the quickstart sweep
# (2 models x 2 learning rates on scikit-learn's digits, offline) into ./mlflow.db.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python writes the bytecode of what it imports into .venv once (scripts/bootstrap.sh says
# why it does not compile everything), also where the environment says not to.
unset PYTHONDONTWRITEBYTECODE
./scripts/bootstrap.sh
exec .venv/bin/raysweep run experiments/quickstart.yaml "$@"
