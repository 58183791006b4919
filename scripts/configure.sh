#!/usr/bin/env bash
# Configures a build directory: scripts/configure.sh <build dir> [extra cmake args...]
# CUDA code is built for sm_90 when nvcc exists (it compiles here; it runs on GPU machines).
set -euo pipefail
build=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cuda_args=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_args=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
             -DCMAKE_CUDA_ARCHITECTURES=90)
fi
cmake -S "$root" -B "$build" -G Ninja "${cuda_args[@]}" "$@" >/dev/null
