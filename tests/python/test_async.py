"""async_op=True: dispatch and combine return a fusco.Work at once; the call proceeds while
the caller computes; wait() gives the same result as the synchronous call."""

import numpy as np
import pytest
import torch

import fusco
from conftest import run_ranks, run_ranks_catching

WORLD, TOKENS, TOPK, EXPERTS, HIDDEN = 4, 64, 4, 16, 24


def inputs(rank, as_torch):
    rng = np.random.default_rng(rank)
    ids = rng.integers(0, EXPERTS, size=(TOKENS, TOPK)).astype(np.int64)
    x = rng.standard_normal((TOKENS, HIDDEN)).astype(np.float32)
    w = rng.random((TOKENS, TOPK)).astype(np.float32)
    if as_torch:
        return torch.from_numpy(ids), torch.from_numpy(x), torch.from_numpy(w)
    return ids, x, w


@pytest.mark.parametrize("as_torch", [False, True])
def test_async_calls_overlap_with_compute_and_equal_the_synchronous_ones(as_torch):
    comms = fusco.local_group(WORLD, 2, chunk_bytes=1024)
    shared_weight = np.arange(HIDDEN * HIDDEN, dtype=np.float32).reshape(HIDDEN, HIDDEN) % 7

    def body(comm):
        ids, x, w = inputs(comm.rank, as_torch)
        plan = comm.plan(ids, EXPERTS)
        work = comm.dispatch(plan, x, async_op=True)
        assert isinstance(work, fusco.Work)
        shared = np.asarray(x) @ shared_weight          # a shared expert, meanwhile
        recv = work.wait()
        assert work.is_completed()
        out = comm.combine(plan, recv, w, async_op=True).wait()
        return recv, out, shared, comm.dispatch(plan, x), comm.combine(plan, recv, w)

    for rank, (recv, out, shared, recv_sync, out_sync) in enumerate(run_ranks(comms, body)):
        assert isinstance(recv, torch.Tensor) == as_torch
        np.testing.assert_array_equal(np.asarray(recv), np.asarray(recv_sync))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(out_sync))
        x = np.asarray(inputs(rank, False)[1])
        np.testing.assert_array_equal(shared, x @ shared_weight)


def test_async_calls_keep_their_order():
    comms = fusco.local_group(WORLD, 2)

    def body(comm):
        ids, x, w = inputs(comm.rank, False)
        plan = comm.plan(ids, EXPERTS)
        first = comm.dispatch(plan, x, async_op=True)
        again = comm.plan(ids, EXPERTS)   # a synchronous call waits for the pending one
        assert first.is_completed()
        return first.wait(), comm.dispatch(again, x)

    for recv_async, recv_sync in run_ranks(comms, body):
        np.testing.assert_array_equal(recv_async, recv_sync)


def test_async_error_is_raised_by_wait_and_the_group_stays_usable():
    comms = fusco.local_group(WORLD, 2)

    def bad(comm):
        ids, x, _ = inputs(comm.rank, False)
        plan = comm.plan(ids, EXPERTS)
        work = comm.dispatch(plan, x[1:] if comm.rank == 1 else x, async_op=True)
        return work.wait()

    outcomes = run_ranks_catching(comms, bad)
    for rank, outcome in enumerate(outcomes):
        assert isinstance(outcome, fusco.InvalidArgumentError)
        assert ("x is" if rank == 1 else "rank 1 rejected") in str(outcome)

    def good(comm):
        ids, x, _ = inputs(comm.rank, False)
        return comm.dispatch(comm.plan(ids, EXPERTS), x, async_op=True).wait().shape

    assert all(shape[1] == HIDDEN for shape in run_ranks(comms, good))
