"""Dispatch and combine through the Python API, numpy and torch, against reference.py."""

import numpy as np
import pytest
import torch

import fusco
import reference
from conftest import run_ranks


def make_case(seed, world=None):
    """A random case; `world` fixes the world size (the other draws stay the same)."""
    rng = np.random.default_rng(seed)
    world = int(rng.integers(1, 7)) if world is None else (rng.integers(1, 7), world)[1]
    case = dict(
        seed=seed,
        world=world,
        ranks_per_node=int(rng.integers(1, world + 1)),
        topk=int(rng.integers(1, 9)),
        hidden=int(rng.choice([1, 7, 16, 33])),
        dedup=str(rng.choice(["none", "rank", "node"])),
        dtype=str(rng.choice(["float32", "float16"])),
        chunk_bytes=int(rng.choice([64, 1 << 20])),
    )
    if rng.random() < 0.3:
        case["experts"] = int(rng.integers(1, 20))
        case["expert_map"] = [int(o) for o in rng.integers(0, world, size=case["experts"])]
    else:
        case["experts"] = world * int(rng.integers(1, 5))
        case["expert_map"] = None
    case["tokens"] = [int(t) if rng.random() > 0.2 else 0 for t in rng.integers(1, 30, world)]
    ids = []
    for t in case["tokens"]:
        idx = rng.integers(0, case["experts"], size=(t, case["topk"]))
        idx[rng.random(idx.shape) < 0.15] = -1  # masked slots, duplicates happen by chance
        ids.append(idx.astype(rng.choice([np.int32, np.int64])))
    case["ids"] = ids
    case["x"] = [rng.uniform(-1, 1, (t, case["hidden"])).astype(case["dtype"])
                 for t in case["tokens"]]
    case["w"] = [rng.uniform(-1, 1, (t, case["topk"])).astype(np.float32) for t in case["tokens"]]
    return case


def run_fusco(case, as_torch=False):
    comms = fusco.local_group(case["world"], case["ranks_per_node"],
                              chunk_bytes=case["chunk_bytes"])
    convert = torch.from_numpy if as_torch else (lambda a: a)

    def body(comm):
        r = comm.rank
        plan = comm.plan(convert(case["ids"][r]), case["experts"], case["expert_map"],
                         dedup=case["dedup"])
        recv = comm.dispatch(plan, convert(case["x"][r]))
        # Expert r's output: a deterministic function of the rows (a scale).
        y = recv * 0.5 if as_torch else (recv * np.float32(0.5)).astype(recv.dtype)
        out = comm.combine(plan, y, convert(case["w"][r]))
        return plan, recv, y, out

    return run_ranks(comms, body)


@pytest.mark.parametrize("seed", range(25))
def test_randomized_cases_match_the_numpy_reference(seed):
    case = make_case(seed)
    results = run_fusco(case)
    rows, counts = reference.receive_rows(case["ids"], case["experts"], case["world"],
                                          case["expert_map"])
    want_recv = reference.dispatch(rows, case["x"])
    for r, (plan, recv, _, _) in enumerate(results):
        assert isinstance(recv, np.ndarray) and recv.dtype == case["x"][r].dtype
        np.testing.assert_array_equal(plan.tokens_per_expert, counts[r])
        np.testing.assert_array_equal(recv, want_recv[r])
    dtype = np.dtype(case["dtype"])
    round_to = None if dtype == np.float32 else (lambda p: p.astype(dtype).astype(np.float32))
    want = reference.combine(rows, case["ids"], case["w"], [res[2] for res in results],
                             case["experts"], case["world"], case["ranks_per_node"],
                             case["dedup"], case["expert_map"],
                             to_float=lambda a: a.astype(np.float32), round_to=round_to)
    for r, (_, _, _, out) in enumerate(results):
        np.testing.assert_array_equal(out, want[r][0].astype(dtype), err_msg=f"seed {seed}")


def test_torch_in_torch_out_and_bfloat16():
    case = make_case(3)
    case.update(world=4, ranks_per_node=2, dedup="node")
    case["x"] = [x.astype(np.float32) for x in case["x"]]
    results = run_fusco(dict(case, dtype="float32"), as_torch=True)
    for plan, recv, _, out in results:
        assert isinstance(recv, torch.Tensor) and isinstance(out, torch.Tensor)
    comms = fusco.local_group(2)

    def bf16(comm):
        idx = torch.tensor([[0, 1], [1, -1], [0, 0]], dtype=torch.int64)
        plan = comm.plan(idx, 2)
        x = torch.arange(6, dtype=torch.float32).reshape(3, 2).to(torch.bfloat16) + comm.rank
        recv = comm.dispatch(plan, x)
        out = comm.combine(plan, recv, torch.full((3, 2), 0.5))
        return x, recv, out

    for x, recv, out in run_ranks(comms, bf16):
        assert recv.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
        # Identity experts, weights 0.5: each token gets 0.5 * x per valid slot.
        torch.testing.assert_close(out, torch.stack([x[0], 0.5 * x[1], x[2]]))


def test_identity_experts_give_x_times_sum_of_weights():
    comms = fusco.local_group(3, 2)
    rng = np.random.default_rng(9)
    ids = [rng.integers(-1, 6, size=(12, 3)) for _ in range(3)]
    xs = [rng.uniform(-1, 1, (12, 8)).astype(np.float32) for _ in range(3)]
    ws = [rng.uniform(0, 1, (12, 3)).astype(np.float32) for _ in range(3)]

    def body(comm):
        r = comm.rank
        plan = comm.plan(ids[r], 6)
        return comm.combine(plan, comm.dispatch(plan, xs[r]), ws[r])

    for r, out in enumerate(run_ranks(comms, body)):
        total = np.where(ids[r] >= 0, ws[r], 0).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(out, xs[r] * total, rtol=1e-5, atol=1e-6)


def test_plan_reports_stats_and_layout():
    comms = fusco.local_group(4, 2)
    ids = np.array([[0, 7], [6, 6]], dtype=np.int32)  # experts 6 and 7 live on rank 3

    def body(comm):
        return comm.plan(ids, 8, dedup="node")

    plans = run_ranks(comms, body)
    assert plans[3].num_recv_rows == 4 * 3  # every rank sends 3 rows to rank 3
    stats = plans[0].stats
    assert stats["rows_per_destination"] == [1, 0, 0, 3]
    assert stats["inter_node_rows"] == 2 and stats["inter_node_rows_without_dedup"] == 3
    assert stats["dedup_ratio"] == pytest.approx(1.5)


def test_replica_map_spreads_a_hot_expert_and_names_the_copies():
    comms = fusco.local_group(4)
    ids = np.zeros((20, 1), dtype=np.int64)  # every token to expert 0
    replicas = [[0, 1], [2], [3], [2]]

    def body(comm):
        return comm.plan(ids, 4, expert_map=replicas)

    plans = run_ranks(comms, body)
    assert plans[0].stats["received_rows_per_rank_unbalanced"] == [80, 0, 0, 0]
    assert plans[0].stats["received_rows_per_rank"] == [40, 40, 0, 0]
    assert plans[1].local_experts.tolist() == [0]
    assert plans[2].local_experts.tolist() == [1, 3]
    assert plans[3].slot_ranks.tolist() == [[0]] * 10 + [[1]] * 10


def test_bad_replica_map_and_relay_name_the_problem():
    (comm,) = fusco.local_group(1)
    ids = np.zeros((2, 1), dtype=np.int64)
    with pytest.raises(fusco.InvalidArgumentError, match=r"replicas\[0\] names rank 0 twice"):
        comm.plan(ids, 1, expert_map=[[0, 0]])
    with pytest.raises(fusco.InvalidArgumentError, match="expected rail or balanced"):
        comm.plan(ids, 1, relay="nearest")
    with pytest.raises(fusco.InvalidArgumentError, match="expected auto, on or off"):
        comm.plan(ids, 1, process_relays="sometimes")


def test_capacity_layout_drops_counts_and_combines_only_delivered_rows():
    comms = fusco.local_group(2)
    ids = np.zeros((6, 2), dtype=np.int64)  # slot 0: expert 0 (rank 0), slot 1: expert 2
    ids[:, 1] = 2
    x = [np.arange(6 * 3, dtype=np.float32).reshape(6, 3) + r for r in range(2)]
    w = np.full((6, 2), 0.5, dtype=np.float32)

    def body(comm):
        plan = comm.plan(ids, 4, capacity=8)
        recv = comm.dispatch(plan, x[comm.rank])
        out = comm.combine(plan, recv, w)  # identity experts
        return plan, recv, out

    (plan0, recv0, out0), (plan1, _, out1) = run_ranks(comms, body)
    assert plan0.tokens_per_expert.tolist() == [8, 0]
    assert plan0.dropped_per_expert.tolist() == [4, 0]
    assert plan0.padded_tokens_per_expert.tolist() == [8, 8]
    assert recv0.shape == (16, 3) and not recv0[8:].any()  # expert 1's block: zero padding
    assert plan1.dropped_per_expert.tolist() == [4, 0]  # expert 2 overflows the same way
    # Each expert keeps rank 0's 6 rows and rank 1's first 2: rank 1's tokens 2..5 lose both.
    assert plan1.slot_ranks.tolist() == [[0, 1], [0, 1]] + [[-1, -1]] * 4
    np.testing.assert_array_equal(out0, x[0])
    kept = np.array([1, 1, 0, 0, 0, 0], dtype=np.float32)[:, None]
    np.testing.assert_array_equal(out1, x[1] * kept)


def test_capacity_overflow_as_error_raises_on_every_rank():
    comms = fusco.local_group(2)
    ids = np.zeros((5, 1), dtype=np.int64)

    def body(comm):
        with pytest.raises(fusco.CapacityExceededError, match="gets 10 rows but layout.capacity"):
            comm.plan(ids, 2, capacity=4, overflow="error")
        return comm.plan(ids, 2, capacity=10, overflow="error").num_recv_rows

    assert run_ranks(comms, body) == [10, 10]  # one local expert of capacity 10 each


@pytest.mark.parametrize("as_torch", [False, True])
def test_strided_rows_are_sent_without_a_copy(as_torch):
    comms = fusco.local_group(3, 2)
    rng = np.random.default_rng(4)
    ids = [rng.integers(-1, 6, size=(5, 2)) for _ in range(3)]
    wide = [rng.standard_normal((5, 11)).astype(np.float32) for _ in range(3)]
    w = [rng.random((5, 2), dtype=np.float32) for _ in range(3)]

    def body(comm):
        r = comm.rank
        x = wide[r][:, 2:9]  # 7 columns of 11: rows spread apart
        plan = comm.plan(ids[r], 6)
        if as_torch:
            recv = comm.dispatch(plan, torch.from_numpy(wide[r])[:, 2:9]).numpy()
        else:
            recv = comm.dispatch(plan, x)
        want_recv = comm.dispatch(plan, np.ascontiguousarray(x))
        y_wide = np.concatenate([recv, recv], axis=1)  # expert_out as a slice too
        out = comm.combine(plan, y_wide[:, :7], w[r])
        return recv, want_recv, out, comm.combine(plan, want_recv, w[r])

    for recv, want_recv, out, want_out in run_ranks(comms, body):
        np.testing.assert_array_equal(recv, want_recv)
        np.testing.assert_array_equal(out, want_out)


def test_columns_spread_apart_are_refused():
    (comm,) = fusco.local_group(1)
    plan = comm.plan(np.zeros((4, 1), dtype=np.int64), 1)
    x = np.zeros((4, 6), dtype=np.float32)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        comm.dispatch(plan, x[:, ::2])


@pytest.mark.parametrize("async_op", [False, True])
def test_companion_tensor_travels_with_each_row(async_op):
    comms = fusco.local_group(4, 2)
    rng = np.random.default_rng(8)
    ids = [rng.integers(-1, 8, size=(7, 3)) for _ in range(4)]

    def body(comm):
        r = comm.rank
        x = rng_rows = np.full((7, 5), r, dtype=np.float32) + np.arange(7)[:, None] / 10
        token_ids = np.stack([np.full(7, r), np.arange(7)], axis=1).astype(np.int64)
        plan = comm.plan(ids[r], 8, alignment=4)
        result = comm.dispatch(plan, rng_rows, async_op=async_op, extra=token_ids)
        recv, extra_recv = result.wait() if async_op else result
        return plan, x, recv, extra_recv

    results = run_ranks(comms, body)
    xs = [x for _, x, _, _ in results]
    for plan, _, recv, extra_recv in results:
        assert extra_recv.shape == (plan.num_recv_rows, 2)
        for row in range(plan.num_recv_rows):
            source, token = extra_recv[row]
            if source == 0 and token == 0 and not recv[row].any():
                continue  # a padding row: zeros in both
            np.testing.assert_array_equal(recv[row], xs[source][token])


def test_combine_in_rounds_gives_the_one_round_result():
    rng = np.random.default_rng(12)
    ids = [rng.integers(-1, 8, size=(20, 4)) for _ in range(4)]
    ys = {}

    def run(**options):
        comms = fusco.local_group(4, 2, **options)

        def body(comm):
            plan = comm.plan(ids[comm.rank], 8)
            recv = comm.dispatch(plan, np.ones((20, 6), dtype=np.float32) * (comm.rank + 1))
            y = recv * np.arange(1, 7, dtype=np.float32)
            w = np.full((20, 4), 0.25, dtype=np.float32)
            return plan.combine_rounds(6 * 4), comm.combine(plan, y, w)

        return run_ranks(comms, body)

    one = run()
    bounded = run(combine_buffer_bytes=3 * 6 * 4)  # three returned rows per round
    assert all(rounds == 1 for rounds, _ in one)
    assert all(rounds > 1 for rounds, _ in bounded)
    for (_, a), (_, b) in zip(one, bounded):
        np.testing.assert_array_equal(a, b)
