"""A small numpy reference of fusco's dispatch and combine, written from the definitions."""

import numpy as np


def owners_of(num_experts, world_size, expert_map):
    if expert_map is None:
        per_rank = num_experts // world_size
        return [e // per_rank for e in range(num_experts)]
    return list(expert_map)


def receive_rows(topk_idx, num_experts, world_size, expert_map=None):
    """Per rank: the (source, token, slot) of each received row, sorted by
    (local expert, source rank, token, slot), and rows per local expert."""
    owners = owners_of(num_experts, world_size, expert_map)
    slot_of = {}
    for e in range(num_experts):
        slot_of[e] = sum(1 for f in range(e) if owners[f] == owners[e])
    keyed = [[] for _ in range(world_size)]
    for src, idx in enumerate(topk_idx):
        for t in range(idx.shape[0]):
            for j in range(idx.shape[1]):
                e = int(idx[t, j])
                if e >= 0:
                    keyed[owners[e]].append((slot_of[e], src, t, j))
    rows, counts = [], []
    for d in range(world_size):
        keyed[d].sort()
        local = sum(1 for o in owners if o == d)
        count = np.zeros(local, dtype=np.int64)
        for slot, _, _, _ in keyed[d]:
            count[slot] += 1
        rows.append([(src, t, j) for _, src, t, j in keyed[d]])
        counts.append(count)
    return rows, counts


def dispatch(rows, xs):
    return [np.stack([xs[src][t] for src, t, _ in rank_rows]) if rank_rows
            else np.zeros((0, xs[0].shape[1]), dtype=xs[0].dtype) for rank_rows in rows]


def combine(rows, topk_idx, weights, ys, num_experts, world_size, ranks_per_node, dedup,
            expert_map=None, to_float=np.float32, round_to=None):
    """out[r][t] = sum_j w[t, j] * y[row(t, j)] in float32, sums starting from their first
    term; with dedup "node" one partial per node (rounded by round_to), added in node order."""
    owners = owners_of(num_experts, world_size, expert_map)
    where = {}
    for d, rank_rows in enumerate(rows):
        for i, (src, t, j) in enumerate(rank_rows):
            where[(src, t, j)] = (d, i)
    outs = []
    for r, idx in enumerate(topk_idx):
        hidden = ys[0].shape[1]
        out = np.zeros((idx.shape[0], hidden), dtype=np.float32)
        valid_tokens = np.zeros(idx.shape[0], dtype=bool)
        for t in range(idx.shape[0]):
            groups = {}
            for j in range(idx.shape[1]):
                e = int(idx[t, j])
                if e < 0:
                    continue
                node = owners[e] // ranks_per_node if dedup == "node" else 0
                d, i = where[(r, t, j)]
                groups.setdefault(node, []).append(
                    np.float32(weights[r][t, j]) * to_float(ys[d][i]))
            if not groups:
                continue
            valid_tokens[t] = True
            total = None
            for node in sorted(groups):
                partial = groups[node][0]
                for term in groups[node][1:]:
                    partial = partial + term
                if len(groups) > 1 and round_to is not None:
                    partial = round_to(partial)
                total = partial if total is None else total + partial
            out[t] = total
        outs.append((out, valid_tokens))
    return outs
