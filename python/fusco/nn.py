"""fusco.nn.MoELayer: an expert-parallel Mixture-of-Experts layer on fusco."""

import torch
from torch import nn

from . import torch as ftorch

__all__ = ["MoELayer"]


class MoELayer(nn.Module):
    """Expert-parallel MoE layer.

    Each token is routed by a softmax router to its top-k experts (weights renormalised over
    the k), dispatched with fusco to the ranks that own those experts (contiguous map:
    rank r owns experts [r*E/W, (r+1)*E/W)), run through a two-layer MLP per local expert
    over the expert-major rows, and combined back with the router weights. The router is
    replicated (same initial weights on every rank for the same seed); expert weights are
    initialised per global expert id, so a layer's experts are the same whatever the world
    size. forward is collective: every rank of the group calls it, each from its own thread.

    Args:
        comm: the fusco.Communicator of this rank.
        hidden: model dimension H.
        ffn_hidden: expert MLP inner dimension F.
        num_experts: E, a multiple of the world size.
        topk: experts per token.
        dedup: "none", "rank" or "node".
        seed: initialisation seed (use the same on every rank).
        dtype: parameter dtype.
    Shapes: forward(x [T, H]) -> [T, H]; T may differ between ranks (0 included).
    """

    def __init__(self, comm, hidden, ffn_hidden, num_experts, topk, dedup="node", seed=0,
                 dtype=torch.float32):
        super().__init__()
        if num_experts % comm.world_size != 0:
            raise ValueError(f"num_experts = {num_experts} is not a multiple of the world size "
                             f"{comm.world_size}")
        if not 1 <= topk <= num_experts:
            raise ValueError(f"topk = {topk} is outside [1, num_experts = {num_experts}]")
        self.comm = comm
        self.num_experts = num_experts
        self.topk = topk
        self.dedup = dedup
        self.local_experts = num_experts // comm.world_size
        first = comm.rank * self.local_experts
        gen = torch.Generator().manual_seed(seed)
        router = torch.randn(num_experts, hidden, generator=gen, dtype=dtype) / hidden ** 0.5
        w1 = torch.randn(num_experts, hidden, ffn_hidden, generator=gen, dtype=dtype)
        w2 = torch.randn(num_experts, ffn_hidden, hidden, generator=gen, dtype=dtype)
        self.router = nn.Parameter(router)
        self.w1 = nn.Parameter(w1[first:first + self.local_experts] / hidden ** 0.5)
        self.w2 = nn.Parameter(w2[first:first + self.local_experts] / ffn_hidden ** 0.5)

    def route(self, x):
        """Top-k expert ids [T, k] (int64) and their renormalised softmax weights [T, k]."""
        probs = torch.softmax(x @ self.router.t(), dim=-1)
        weights, ids = torch.topk(probs, self.topk, dim=-1)
        return ids, weights / weights.sum(dim=-1, keepdim=True)

    def experts(self, rows, tokens_per_expert):
        """The local experts over expert-major rows: a grouped MLP, one block per expert."""
        outputs = []
        for e, block in enumerate(torch.split(rows, tokens_per_expert)):
            outputs.append(torch.nn.functional.gelu(block @ self.w1[e]) @ self.w2[e])
        return torch.cat(outputs) if outputs else rows[:0]

    def forward(self, x):
        ids, weights = self.route(x)
        plan = self.comm.plan(ids.detach(), self.num_experts, dedup=self.dedup)
        rows = ftorch.dispatch(self.comm, plan, x)
        y = self.experts(rows, plan.tokens_per_expert.tolist())
        return ftorch.combine(self.comm, plan, y.contiguous(), weights)
