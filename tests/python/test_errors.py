"""Bad inputs raise the documented errors on the rank that made them, the other ranks learn
of it, and the group stays usable."""

import threading
import time

import numpy as np
import pytest
import torch

import fusco
from conftest import run_ranks, run_ranks_catching

WORLD = 4


def good_ids():
    return np.array([[0, 7], [1, 6], [2, 5], [3, -1]], dtype=np.int64)


def assert_usable(comms):
    def body(comm):
        plan = comm.plan(good_ids(), 8)
        recv = comm.dispatch(plan, np.ones((4, 3), dtype=np.float32))
        return comm.combine(plan, recv, np.full((4, 2), 0.5, dtype=np.float32))

    for out in run_ranks(comms, body):
        np.testing.assert_array_equal(out[:3], np.ones((3, 3), dtype=np.float32))
        np.testing.assert_array_equal(out[3], np.full(3, 0.5, dtype=np.float32))


def on_rank(rank, bad, good):
    """A per-rank body: `bad` on `rank`, `good` elsewhere."""
    return lambda comm: bad(comm) if comm.rank == rank else good(comm)


@pytest.fixture
def comms():
    return fusco.local_group(WORLD, 2, timeout_ms=20000)


def test_expert_id_out_of_range(comms):
    ids = good_ids()
    ids[1, 1] = 99
    outcomes = run_ranks_catching(comms, on_rank(2, lambda c: c.plan(ids, 8),
                                                 lambda c: c.plan(good_ids(), 8)))
    assert isinstance(outcomes[2], fusco.InvalidArgumentError)
    assert "topk_idx[1, 1] = 99 is outside [-1, num_experts=8)" in str(outcomes[2])
    assert outcomes[2].code == "invalid_argument"
    for r in (0, 1, 3):
        assert isinstance(outcomes[r], fusco.InvalidArgumentError)
        assert "rank 2 rejected" in str(outcomes[r])
    assert_usable(comms)


def test_topk_idx_of_float_dtype_is_a_type_error(comms):
    bad = good_ids().astype(np.float32)
    outcomes = run_ranks_catching(comms, on_rank(0, lambda c: c.plan(bad, 8),
                                                 lambda c: c.plan(good_ids(), 8)))
    assert isinstance(outcomes[0], TypeError) and "topk_idx" in str(outcomes[0])
    assert all(isinstance(o, fusco.InvalidArgumentError) for o in outcomes[1:])
    assert_usable(comms)


@pytest.mark.parametrize("bad, error, text", [
    (dict(num_experts=8.0), TypeError, "num_experts must be an integer, got float 8.0"),
    (dict(num_experts=8.7), TypeError, "num_experts must be an integer, got float 8.7"),
    (dict(num_experts="8"), TypeError, "num_experts must be an integer, got str '8'"),
    (dict(num_experts=True), TypeError, "num_experts must be an integer, got bool True"),
    (dict(num_experts=torch.tensor(True)), TypeError, "num_experts must be an integer, got bool"),
    (dict(num_experts=2**70), ValueError, f"num_experts = {2**70} is outside"),
    (dict(num_experts=2**40), fusco.InvalidArgumentError, "is outside [1, 2^20 = 1048576]"),
    (dict(expert_map=[0, 0, 1, 1.5, 2, 2, 3, 3]), TypeError,
     "expert_map[3] must be an integer, got float 1.5"),
    (dict(expert_map=[0, 0, 1, 2**40, 2, 2, 3, 3]), ValueError, "expert_map[3] = 1099511627776"),
    (dict(expert_map=[[0], [0, 1.0], [1], [1], [2], [2], [3], [3]]), TypeError,
     "expert_map[1][1] must be an integer, got float"),
    (dict(alignment=2.5), TypeError, "alignment must be an integer, got float 2.5"),
    (dict(capacity="10"), TypeError, "capacity must be an integer, got str '10'"),
    (dict(dedup=1), TypeError, "dedup must be a string, got int 1"),
    (dict(overflow=None), TypeError, "overflow must be a string, got NoneType None"),
    (dict(process_relays=b"on"), TypeError, "process_relays must be a string, got bytes"),
])
def test_plan_arguments_are_converted_strictly_and_the_rank_still_joins(comms, bad, error, text):
    """Floats are not truncated, huge integers and wrong types are refused, and the rank that
    refused its arguments still joins the call: its peers fail at once, naming it, and the
    group stays usable (issue 18, classes 6 and 10)."""
    def bad_plan(comm):
        args = dict(num_experts=8) | bad
        return comm.plan(good_ids(), args.pop("num_experts"), **args)

    start = time.monotonic()
    outcomes = run_ranks_catching(comms, on_rank(1, bad_plan, lambda c: c.plan(good_ids(), 8)))
    assert isinstance(outcomes[1], error) and text in str(outcomes[1]), repr(outcomes[1])
    for r in (0, 2, 3):
        assert isinstance(outcomes[r], fusco.InvalidArgumentError), repr(outcomes[r])
        assert "rank 1 rejected" in str(outcomes[r])
    assert time.monotonic() - start < 10  # not the 20 s timeout
    assert_usable(comms)


def test_integer_scalars_of_numpy_and_torch_are_taken(comms):
    plans = run_ranks(comms, lambda c: c.plan(good_ids(), np.int64(8), expert_map=[
        np.int32(0), 0, torch.tensor(1), 1, 2, 2, 3, 3], alignment=np.int16(2)))
    assert all(p.num_experts == 8 for p in plans)


def test_two_threads_on_one_communicator_one_is_refused_at_once():
    """Issue 18, class 3: a second thread calling into a communicator that is inside a call
    gets InvalidArgumentError at once; the running call completes and the group works."""
    comms = fusco.local_group(2, timeout_ms=20000)
    outcomes, refused_one = [], threading.Event()

    def plan_on_rank0():
        try:
            outcomes.append(comms[0].plan(np.array([[0], [1]]), 2))
        except fusco.InvalidArgumentError as exc:
            outcomes.append(exc)
            refused_one.set()

    threads = [threading.Thread(target=plan_on_rank0) for _ in range(2)]
    for thread in threads:
        thread.start()
    # Rank 1 comes only once a rank-0 call was refused: the other one is still waiting for it.
    assert refused_one.wait(10), "neither call was refused within 10 s"
    comms[1].plan(np.array([[0], [1]]), 2)
    for thread in threads:
        thread.join()
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and len(outcomes) == 2, outcomes
    assert "calls on one communicator must not overlap" in str(refused[0])
    plans = run_ranks(comms, lambda c: c.plan(np.array([[0], [1]]), 2))
    assert all(p.num_recv_rows == 2 for p in plans)  # one row from each rank


def test_non_contiguous_x_is_a_value_error_naming_it(comms):
    def body(comm):
        plan = comm.plan(good_ids(), 8)
        x = np.ones((4, 6), dtype=np.float32)
        return comm.dispatch(plan, x[:, ::2] if comm.rank == 1 else x[:, :3].copy())

    outcomes = run_ranks_catching(comms, body)
    assert isinstance(outcomes[1], ValueError) and "x must be C-contiguous" in str(outcomes[1])
    assert isinstance(outcomes[0], fusco.InvalidArgumentError)
    assert_usable(comms)


def test_shape_mismatch_and_hidden_mismatch(comms):
    def wrong_rows(comm):
        plan = comm.plan(good_ids(), 8)
        rows = 5 if comm.rank == 3 else 4
        return comm.dispatch(plan, np.ones((rows, 3), dtype=np.float32))

    outcomes = run_ranks_catching(comms, wrong_rows)
    assert isinstance(outcomes[3], fusco.InvalidArgumentError)
    assert "x is [5, 3] fp32 host but must be [4, 3]" in str(outcomes[3])

    def wrong_hidden(comm):
        plan = comm.plan(good_ids(), 8)
        return comm.dispatch(plan, np.ones((4, 3 + comm.rank % 2), dtype=np.float32))

    outcomes = run_ranks_catching(comms, wrong_hidden)
    assert all(isinstance(o, fusco.MismatchError) for o in outcomes)
    assert_usable(comms)


def test_combine_of_wrong_weight_dtype_and_fp8_like_types(comms):
    def body(comm):
        plan = comm.plan(good_ids(), 8)
        recv = comm.dispatch(plan, np.ones((4, 3), dtype=np.float32))
        weights = np.ones((4, 2), dtype=np.float64 if comm.rank == 0 else np.float32)
        return comm.combine(plan, recv, weights)

    outcomes = run_ranks_catching(comms, body)
    assert isinstance(outcomes[0], fusco.InvalidArgumentError)
    assert "topk_weights must be fp32 with fp32 expert_out, got fp64" in str(outcomes[0])

    def int_weights(comm):
        plan = comm.plan(good_ids(), 8)
        recv = comm.dispatch(plan, np.ones((4, 3), dtype=np.float32))
        weights = np.ones((4, 2), dtype=np.int32 if comm.rank == 2 else np.float32)
        return comm.combine(plan, recv, weights)

    outcomes = run_ranks_catching(comms, int_weights)
    assert isinstance(outcomes[2], TypeError) and "topk_weights" in str(outcomes[2])

    def int_combine(comm):
        plan = comm.plan(good_ids(), 8)
        recv = comm.dispatch(plan, np.ones((4, 3), dtype=np.int32))
        return comm.combine(plan, recv, np.ones((4, 2), dtype=np.float32))

    outcomes = run_ranks_catching(comms, int_combine)
    assert all(isinstance(o, fusco.UnsupportedError) for o in outcomes)
    assert_usable(comms)


def test_torch_tensor_on_wrong_kind_and_plain_lists(comms):
    outcomes = run_ranks_catching(comms, on_rank(1, lambda c: c.plan([[0, 1]], 8),
                                                 lambda c: c.plan(torch.from_numpy(good_ids()),
                                                                  8)))
    assert isinstance(outcomes[1], TypeError)
    assert "numpy array or a torch tensor" in str(outcomes[1])
    assert_usable(comms)


def test_group_creation_errors():
    with pytest.raises(fusco.InvalidArgumentError, match="world_size = 0"):
        fusco.local_group(0)
    with pytest.raises(TypeError, match="unknown options"):
        fusco.local_group(2, chunk=5)


def test_timeout_names_the_missing_rank_and_the_group_must_be_recreated():
    comms = fusco.local_group(3, timeout_ms=300)
    outcomes = run_ranks_catching(comms[:2], lambda c: c.plan(good_ids(), 6))
    for o in outcomes:
        assert isinstance(o, (fusco.FuscoTimeoutError, fusco.AbortedError))
        assert "rank(s) 2" in str(o)
    assert isinstance(outcomes[0], TimeoutError) or isinstance(outcomes[1], TimeoutError)
    assert not comms[0].usable
    with pytest.raises(fusco.AbortedError, match="recreate"):
        comms[2].plan(good_ids(), 6)


def test_abort_from_a_watchdog_unblocks_waiting_ranks():
    comms = fusco.local_group(3, timeout_ms=60000)
    ids = np.array([[0, 1], [2, 0]], dtype=np.int64)
    plans = run_ranks(comms, lambda c: c.plan(ids, 3))
    x = np.ones((2, 4), dtype=np.float32)
    timer = threading.Timer(0.1, comms[2].abort, args=("rank 2 is gone",))
    timer.start()
    start = time.monotonic()
    # Rank 2 never dispatches: the others wait until the watchdog aborts the group.
    outcomes = run_ranks_catching(comms[:2], lambda c: c.dispatch(plans[c.rank], x))
    timer.join()
    assert time.monotonic() - start < 10
    for outcome in outcomes:
        assert isinstance(outcome, fusco.AbortedError)
        assert "rank 2 aborted the group: rank 2 is gone" in str(outcome)
    assert not any(c.usable for c in comms)
    assert_usable(fusco.local_group(WORLD))  # a new group works
