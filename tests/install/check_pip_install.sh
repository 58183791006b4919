#!/usr/bin/env bash
# `pip install ./python` into a fresh virtual environment (system site packages for numpy and
# pybind11, no network: --no-build-isolation), then a dispatch/combine round trip with it.
# Arguments: <source dir> <work dir> <python>.
set -euo pipefail
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
"$work/venv/bin/python" - <<'PY'
import threading
import numpy as np
import fusco
assert "venv" in fusco.__file__, fusco.__file__
comms = fusco.local_group(2)
outs = [None, None]
def body(r):
    plan = comms[r].plan(np.array([[0, 1], [1, -1]]), 2)
    recv = comms[r].dispatch(plan, np.ones((2, 4), dtype=np.float32))
    outs[r] = comms[r].combine(plan, recv, np.full((2, 2), 0.5, dtype=np.float32))
threads = [threading.Thread(target=body, args=(r,)) for r in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
assert np.array_equal(outs[1], np.array([[1.0] * 4, [0.5] * 4], dtype=np.float32)), outs[1]
print("pip-installed fusco", fusco.__version__, "OK from", fusco.__file__)
PY
