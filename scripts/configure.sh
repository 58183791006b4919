#!/usr/bin/env bash
# Configures a build directory: scripts/configure.sh <build dir> [extra cmake args...]
# CUDA code is built for sm_80 and sm_90 when nvcc exists (it compiles here; it runs on GPU
# machines; NCCL's device API needs sm_70 or newer).
# The Python package is built for /usr/bin/python3 when present.
set -euo pipefail
build=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cuda_args=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_args=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
             "-DCMAKE_CUDA_ARCHITECTURES=80;90")
fi
# Debian's interpreter is the one that sees python3-torch and python3-pybind11.
python_args=()
if [ -x /usr/bin/python3 ]; then
  python_args=(-DPython_EXECUTABLE=/usr/bin/python3)
fi
cmake -S "$root" -B "$build" -G Ninja "${cuda_args[@]}" "${python_args[@]}" "$@" >/dev/null
