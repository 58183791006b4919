#!/usr/bin/env bash
# Installs the build tree into a fresh prefix and runs a dispatch/combine round trip with the
# installed Python package. Arguments: <build dir> <work dir> <python> <site-packages dir>.
set -euo pipefail
build=$1
work=$2
python=$3
site=$4
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cd "$work"
PYTHONPATH="$work/prefix/$site" "$python" - <<'PY'
import threading
import numpy as np
import fusco
assert fusco.__file__.startswith(__import__("os").getcwd()), fusco.__file__
comms = fusco.local_group(2)
outs = [None, None]
def body(r):
    plan = comms[r].plan(np.array([[0, 1], [1, -1]]), 2)
    recv = comms[r].dispatch(plan, np.ones((2, 4), dtype=np.float32))
    outs[r] = comms[r].combine(plan, recv, np.full((2, 2), 0.5, dtype=np.float32))
threads = [threading.Thread(target=body, args=(r,)) for r in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
assert np.array_equal(outs[0], np.array([[1.0] * 4, [0.5] * 4], dtype=np.float32)), outs[0]
print("installed fusco", fusco.__version__, "OK from", fusco.__file__)
PY
