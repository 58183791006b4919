"""Autograd for fusco: dispatch and combine as torch.autograd.Functions.

    recv = fusco.torch.dispatch(comm, plan, x)              # differentiable in x
    out  = fusco.torch.combine(comm, plan, y, topk_weights)  # differentiable in y and weights

Gradients (DESIGN.md): the gradient of dispatch is combine with unit weights; the gradient
of combine is dispatch of the output gradient scaled per row by that row's weight, and
dw[t, j] = <grad_out[t], y[row(t, j)]>. Backward passes are collective like the forward
ones: every rank runs them in the same order (as every rank of a data-parallel step does).
"""

import numpy as np
import torch

__all__ = ["dispatch", "combine"]


def _weight_dtype(dtype):
    """combine takes float64 weights with float64 rows, float32 weights otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _row_experts(plan):
    """The logical expert of each received row, -1 for padding rows."""
    local = plan.local_experts
    if plan.recv_local_experts.size or plan.num_recv_rows == 0:
        return local[plan.recv_local_experts]
    rows, padded = plan.tokens_per_expert, plan.padded_tokens_per_expert
    return np.concatenate([np.concatenate([np.full(n, e), np.full(p - n, -1)])
                           for e, n, p in zip(local, rows, padded)]).astype(np.int64)


def row_slots(comm, plan):
    """Collective. For each received row, the top-k slot j of the (source, token, slot) pair
    it came from. Computed once per plan with one dispatch of (rank, token, topk_idx,
    slot_ranks) rows: a row's expert and this rank pick the slot (with replicated experts,
    two slots of one token naming one expert may go to different copies); rows of one token
    at one expert (a duplicated expert) are consecutive in slot order."""
    if plan._row_slots is not None:
        return plan._row_slots
    ids = plan._topk_idx
    tokens, topk = ids.shape
    meta = np.empty((tokens, 2 * topk + 2), dtype=np.int64)
    meta[:, 0] = comm.rank
    meta[:, 1] = np.arange(tokens)
    meta[:, 2:topk + 2] = ids
    meta[:, topk + 2:] = plan.slot_ranks
    recv = comm.dispatch(plan, meta)
    rows = recv.shape[0]
    row_expert = _row_experts(plan)
    match = (recv[:, 2:topk + 2] == row_expert[:, None]) & (recv[:, topk + 2:] == comm.rank)
    key = np.concatenate([recv[:, :2], row_expert[:, None]], axis=1)
    starts = np.ones(rows, dtype=bool)
    if rows > 1:
        starts[1:] = np.any(key[1:] != key[:-1], axis=1)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(rows), 0))
    occurrence = np.arange(rows) - group_start
    nth = np.cumsum(match, axis=1) == (occurrence + 1)[:, None]
    slots = np.argmax(match & nth, axis=1).astype(np.int64)
    plan._row_slots = torch.from_numpy(slots)
    return plan._row_slots


class _Dispatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, comm, plan, x):
        ctx.comm, ctx.plan = comm, plan
        return comm.dispatch(plan, x.detach().contiguous())

    @staticmethod
    def backward(ctx, grad_recv):
        comm, plan = ctx.comm, ctx.plan
        grad = grad_recv.contiguous()
        ones = torch.ones((plan.num_tokens, plan.topk), dtype=_weight_dtype(grad.dtype))
        return None, None, comm.combine(plan, grad, ones)


class _Combine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, comm, plan, y, topk_weights):
        ctx.comm, ctx.plan = comm, plan
        y, topk_weights = y.detach().contiguous(), topk_weights.detach().contiguous()
        ctx.save_for_backward(y, topk_weights)
        return comm.combine(plan, y, topk_weights.to(_weight_dtype(y.dtype)))

    @staticmethod
    def backward(ctx, grad_out):
        comm, plan = ctx.comm, ctx.plan
        y, topk_weights = ctx.saved_tensors
        acc = _weight_dtype(y.dtype)
        slots = row_slots(comm, plan)
        rows = torch.arange(plan.num_recv_rows)
        # Every received row gets grad_out of its token, scaled by its own weight.
        grad_rows = comm.dispatch(plan, grad_out.contiguous())
        row_weight = comm.dispatch(plan, topk_weights.to(acc).contiguous())[rows, slots]
        grad_y = (grad_rows.to(acc) * row_weight[:, None]).to(y.dtype)
        # dw[t, j] = <grad_out[t], y[row(t, j)]>: each row's dot product, placed in its slot's
        # column and brought home by a unit-weight combine (one non-zero per column).
        dots = torch.zeros((plan.num_recv_rows, plan.topk), dtype=acc)
        dots[rows, slots] = (grad_rows.to(acc) * y.to(acc)).sum(dim=1)
        ones = torch.ones((plan.num_tokens, plan.topk), dtype=acc)
        grad_w = comm.combine(plan, dots, ones).to(topk_weights.dtype)
        return None, None, grad_y, grad_w


def dispatch(comm, plan, x):
    """Differentiable Communicator.dispatch: x [T, H] tensor -> recv [num_recv_rows, H]."""
    return _Dispatch.apply(comm, plan, x)


def combine(comm, plan, y, topk_weights):
    """Differentiable Communicator.combine: y [num_recv_rows, H], topk_weights [T, k] ->
    out [T, H]; gradients flow to y and topk_weights."""
    return _Combine.apply(comm, plan, y, topk_weights)
