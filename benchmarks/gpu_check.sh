#!/usr/bin/env bash
# The GPU checks in one go (under 2 minutes on an H200), one JSON line per measurement:
#   the training loop vs a plain loop (loop.py --device cuda), one ResNet-18 epoch on
#   CIFAR-10-sized data, 4 small trials packed on one GPU vs one after another, and the seed 000
#   study's smoke twin on synthetic 28x28 data.
#
#   benchmarks/gpu_check.sh          # on a GPU node
#   benchmarks/gpu_check.sh --dry    # anywhere: tiny sizes on the CPU (or RAYSWEEP_GPU_CHECK_DRY=1)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DRY=${RAYSWEEP_GPU_CHECK_DRY:-0}
[[ "${1:-}" == "--dry" ]] && DRY=1
export RAYSWEEP_GPU_CHECK_DRY=$DRY
# One process for all four (benchmarks/gpu_check.py all): torch, CUDA and raysweep start once.
"$PY" benchmarks/gpu_check.py all | grep '^{'
