"""A dispatch/combine round trip with whichever fusco package this interpreter imports; the
install checks run it against an installed package. Argument: a path the package must be under."""

import sys
import threading

import numpy as np

import fusco

assert fusco.__file__.startswith(sys.argv[1]), (fusco.__file__, sys.argv[1])
comms = fusco.local_group(2)
outs = [None, None]


def body(rank):
    plan = comms[rank].plan(np.array([[0, 1], [1, -1]]), 2)
    recv = comms[rank].dispatch(plan, np.ones((2, 4), dtype=np.float32))
    outs[rank] = comms[rank].combine(plan, recv, np.full((2, 2), 0.5, dtype=np.float32))


threads = [threading.Thread(target=body, args=(r,)) for r in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for out in outs:
    assert np.array_equal(out, np.array([[1.0] * 4, [0.5] * 4], dtype=np.float32)), out
print("installed fusco", fusco.__version__, "OK from", fusco.__file__)
