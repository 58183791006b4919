#!/usr/bin/env bash
# `pip install ./python` into a fresh virtual environment (system site packages for numpy and
# pybind11, no network: --no-build-isolation), then a dispatch/combine round trip with it.
# Arguments: <source dir> <work dir> <python>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source=$1
work=$2
python=$3
rm -rf "$work"
mkdir -p "$work/src"
# pip builds in the source tree: give it a copy of what the build needs.
tar -C "$source" --exclude=build --exclude='*.egg-info' -cf - CMakeLists.txt cmake include src \
  kernels python | tar -C "$work/src" -xf -
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-deps \
  --disable-pip-version-check "$work/src/python"
cd "$work"
"$work/venv/bin/python" "$here/roundtrip.py" "$work/venv"
