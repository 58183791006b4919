"""Autograd through fusco.torch: gradcheck in float64, and multi-rank gradients equal to a
dense single-process computation."""

import numpy as np
import pytest
import torch

import fusco
import fusco.torch as ftorch
from conftest import run_ranks


def moe_inputs(seed, tokens, experts, topk, hidden):
    """Per rank (tokens[r] tokens): routing with masked slots, x, weights and the loss's c,
    all float64; and one scale per expert."""
    gen = torch.Generator().manual_seed(seed)
    ids = [torch.randint(-1, experts, (t, topk), generator=gen) for t in tokens]
    xs = [torch.randn(t, hidden, dtype=torch.float64, generator=gen) for t in tokens]
    ws = [torch.rand(t, topk, dtype=torch.float64, generator=gen) for t in tokens]
    cs = [torch.randn(t, hidden, dtype=torch.float64, generator=gen) for t in tokens]
    scale = torch.randn(experts, dtype=torch.float64, generator=gen)
    return ids, xs, ws, cs, scale


def dense_gradients(ids, xs, ws, cs, scale):
    """The MoE of the multi-rank tests with every expert in one process: expert e scales its
    rows by scale[e]; loss = sum over ranks of <out, c>. Returns the leaves x, w and scale
    (lists per rank, and the scale tensor), their .grad filled."""
    dense_x = [x.clone().requires_grad_() for x in xs]
    dense_w = [w.clone().requires_grad_() for w in ws]
    dense_scale = scale.clone().requires_grad_()
    loss = 0
    for r in range(len(ids)):
        valid = (ids[r] >= 0).to(torch.float64)
        expert_scale = dense_scale[ids[r].clamp(min=0)] * valid  # [T, k]
        out = (dense_w[r] * expert_scale).sum(dim=1, keepdim=True) * dense_x[r]
        loss = loss + (out * cs[r]).sum()
    loss.backward()
    return dense_x, dense_w, dense_scale


def test_gradcheck_dispatch_and_combine_float64():
    (comm,) = fusco.local_group(1)
    ids = torch.tensor([[0, 2, -1], [1, 1, 3], [-1, -1, -1], [3, 0, 2]])  # masked, duplicate
    plan = comm.plan(ids, 4)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(plan.num_recv_rows, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: ftorch.dispatch(comm, plan, a), (x,))
    assert torch.autograd.gradcheck(lambda b, c: ftorch.combine(comm, plan, b, c), (y, w))
    assert torch.autograd.gradcheck(
        lambda a, c: ftorch.combine(comm, plan, ftorch.dispatch(comm, plan, a) * 2.0, c), (x, w))


def test_row_slots_follow_duplicates_in_slot_order():
    comms = fusco.local_group(2)
    ids = [np.array([[1, 1, 0], [2, -1, 1]]), np.array([[3, 1, 1]])]

    def body(comm):
        plan = comm.plan(ids[comm.rank], 4)
        return plan, ftorch.row_slots(comm, plan)

    (plan0, slots0), _ = run_ranks(comms, body)
    # Rank 0 owns experts 0 and 1; expert 0: (r0,t0,j2); expert 1: (r0,t0,j0), (r0,t0,j1),
    # (r0,t1,j2), (r1,t0,j1), (r1,t0,j2).
    assert slots0.tolist() == [2, 0, 1, 2, 1, 2]


@pytest.mark.parametrize("dedup", ["none", "node"])
def test_multi_rank_gradients_equal_a_dense_computation(dedup):
    world, experts, topk, hidden = 4, 8, 3, 6
    tokens = [5, 0, 7, 4]
    ids, xs, ws, cs, scale = moe_inputs(7, tokens, experts, topk, hidden)

    dense_x, dense_w, dense_scale = dense_gradients(ids, xs, ws, cs, scale)

    comms = fusco.local_group(world, 2)
    per_rank = experts // world

    def body(comm):
        r = comm.rank
        x = xs[r].clone().requires_grad_()
        w = ws[r].clone().requires_grad_()
        local_scale = scale[r * per_rank:(r + 1) * per_rank].clone().requires_grad_()
        plan = comm.plan(ids[r], experts, dedup=dedup)
        recv = ftorch.dispatch(comm, plan, x)
        row_scale = torch.repeat_interleave(local_scale,
                                            torch.from_numpy(plan.tokens_per_expert))
        y = recv * row_scale[:, None]
        out = ftorch.combine(comm, plan, y, w)
        (out * cs[r]).sum().backward()
        return x.grad, w.grad, local_scale.grad

    for r, (gx, gw, gs) in enumerate(run_ranks(comms, body)):
        torch.testing.assert_close(gx, dense_x[r].grad)
        torch.testing.assert_close(gw, dense_w[r].grad)
        torch.testing.assert_close(gs, dense_scale.grad[r * per_rank:(r + 1) * per_rank])


@pytest.mark.parametrize("relay", ["rail", "balanced"])
def test_replicated_experts_gradients_equal_a_dense_computation(relay):
    # Every copy of an expert holds the same scale; the copies' gradients add up to the dense
    # one. Duplicate experts in one token may land on different copies.
    world, topk, hidden = 4, 4, 5
    replicas = [[0, 2], [1], [2, 3], [3], [0, 1, 2, 3], [1]]
    experts = len(replicas)
    tokens = [9, 3, 0, 12]
    ids, xs, ws, cs, scale = moe_inputs(11, tokens, experts, topk, hidden)
    ids[0][:, :2] = 4  # the hot expert, twice in every token of rank 0

    dense_x, dense_w, dense_scale = dense_gradients(ids, xs, ws, cs, scale)

    def body(comm):
        r = comm.rank
        x = xs[r].clone().requires_grad_()
        w = ws[r].clone().requires_grad_()
        plan = comm.plan(ids[r], experts, expert_map=replicas, dedup="node", relay=relay)
        local = torch.from_numpy(plan.local_experts)
        local_scale = scale[local].clone().requires_grad_()
        recv = ftorch.dispatch(comm, plan, x)
        row_scale = torch.repeat_interleave(local_scale, torch.from_numpy(plan.tokens_per_expert))
        out = ftorch.combine(comm, plan, recv * row_scale[:, None], w)
        (out * cs[r]).sum().backward()
        return plan, x.grad, w.grad, local, local_scale.grad

    results = run_ranks(fusco.local_group(world, 2), body)
    copies_grad = torch.zeros(experts, dtype=torch.float64)
    for r, (plan, gx, gw, local, gs) in enumerate(results):
        torch.testing.assert_close(gx, dense_x[r].grad)
        torch.testing.assert_close(gw, dense_w[r].grad)
        copies_grad.index_add_(0, local, gs)
        assert plan.local_experts.tolist() == [e for e in range(experts) if r in replicas[e]]
        slot_ranks = plan.slot_ranks
        for t in range(tokens[r]):
            for j in range(topk):
                e = int(ids[r][t, j])
                assert (slot_ranks[t, j] == -1) if e < 0 else (slot_ranks[t, j] in replicas[e])
    torch.testing.assert_close(copies_grad, dense_scale.grad)
    stats = results[0][0].stats
    assert sum(stats["received_rows_per_rank"]) == sum(stats["received_rows_per_rank_unbalanced"])
    assert [p.num_recv_rows for p, *_ in results] == stats["received_rows_per_rank"]


@pytest.mark.parametrize("layout", [dict(alignment=8), dict(layout="rank-major"),
                                    dict(capacity=64)])
def test_every_receive_layout_gives_the_expert_major_gradients(layout):
    world, experts, topk, hidden = 4, 8, 3, 5
    tokens = [6, 0, 9, 4]
    ids, xs, ws, _, scale = moe_inputs(5, tokens, experts, topk, hidden)

    def run(options):
        def body(comm):
            r = comm.rank
            x = xs[r].clone().requires_grad_()
            w = ws[r].clone().requires_grad_()
            plan = comm.plan(ids[r], experts, **options)
            row_expert = torch.from_numpy(ftorch._row_experts(plan))
            row_scale = torch.where(row_expert >= 0, scale[row_expert.clamp(min=0)], 0.0)
            out = ftorch.combine(comm, plan, ftorch.dispatch(comm, plan, x) * row_scale[:, None],
                                 w)
            out.sum().backward()
            return out.detach(), x.grad, w.grad

        return run_ranks(fusco.local_group(world, 2), body)

    for want, got in zip(run({}), run(layout)):
        for a, b in zip(want, got):
            torch.testing.assert_close(b, a)
