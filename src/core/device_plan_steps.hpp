#pragma once

// Planning on the GPU, per expert and per token, for ranks of one node under a capacity layout
// ([local experts, capacity] rows per rank): every rank lays out its own routing
// (core/layout_steps.hpp), publishes its per-expert row counts to the group (a [W, P + 1]
// matrix of layout expert_begin rows), and after one barrier derives from that matrix where
// each of its (token, slot) pairs lands, which pairs a full expert drops, its combine terms,
// and its own experts' row counts. Everything is known on the host before the data moves
// (the receive buffers are [local experts * capacity, H]), so no host synchronisation sits
// between routing and dispatch. The order equals the CPU planner's: inside an expert's block,
// source rank, then token, then slot; an expert keeps its first `capacity` rows. These
// functions compile for host and device, so the CPU tests run the arithmetic the kernels run.

#include <cstdint>

#include "core/direct_steps.hpp"
#include "core/layout_steps.hpp"
#include "fusco/host_device.hpp"

namespace fusco::core {

/// What the planning steps read of the group: the count matrix and the expert map, all in
/// memory the running thread can read (device memory on the GPU).
struct GroupCounts {
  /// [world][physical + 1]: row r is rank r's layout expert_begin (its rows to each physical
  /// expert are row[p + 1] - row[p]).
  const int64_t* begins = nullptr;
  int64_t physical = 0;                 ///< P
  int world = 0;                        ///< W
  const int32_t* owner = nullptr;       ///< [P] rank of each physical expert.
  const int64_t* rank_begin = nullptr;  ///< [W + 1] first physical expert of each rank.
  int64_t capacity = 0;                 ///< Rows of each expert's block.
};

/// Rows rank `rank` sends to physical expert `p`.
FUSCO_HOST_DEVICE inline int64_t group_rows(const GroupCounts& g, int rank, int64_t p) {
  const int64_t* row = g.begins + static_cast<int64_t>(rank) * (g.physical + 1);
  return row[p + 1] - row[p];
}

/// Rows ranks [0, rank) send to physical expert `p`: where rank `rank`'s first row for `p`
/// falls inside the expert's block (sources are in rank order).
FUSCO_HOST_DEVICE inline int64_t rows_before_rank(const GroupCounts& g, int rank, int64_t p) {
  int64_t rows = 0;
  for (int r = 0; r < rank; ++r) rows += group_rows(g, r, p);
  return rows;
}

/// Rows all ranks send to physical expert `p`.
FUSCO_HOST_DEVICE inline int64_t expert_rows(const GroupCounts& g, int64_t p) {
  return rows_before_rank(g, g.world, p);
}

/// Rows expert `p`'s block holds: its rows up to the capacity.
FUSCO_HOST_DEVICE inline int64_t kept_rows(const GroupCounts& g, int64_t p) {
  const int64_t rows = expert_rows(g, p);
  return rows < g.capacity ? rows : g.capacity;
}

/// What one rank's planning kernels read and write besides the group's counts.
template <typename Id>
struct TokenPlanning {
  const Id* ids = nullptr;  ///< [T, k] this rank's topk_idx.
  int64_t topk = 0;
  int64_t num_experts = 0;               ///< Logical experts E.
  const int64_t* physical = nullptr;     ///< [E] physical expert of each logical one.
  const int64_t* positions = nullptr;    ///< [T * k] layout positions (-1: nothing to place).
  const int64_t* own_begin = nullptr;    ///< [P + 1] this rank's layout expert_begin.
  const int64_t* first_index = nullptr;  ///< [P] rows_before_rank(rank, p) for every p.
};

/// Stores token `t`'s pairs (stores[t * k + j], rank -1 for a masked slot, an id outside
/// [-1, E) or a row past its expert's capacity) and returns how many rows it delivers.
template <typename Id>
FUSCO_HOST_DEVICE inline int64_t place_token(const GroupCounts& g, const TokenPlanning<Id>& a,
                                             int64_t t, DirectStore* stores) {
  int64_t delivered = 0;
  for (int64_t j = 0; j < a.topk; ++j) {
    const int64_t flat = t * a.topk + j;
    DirectStore& store = stores[flat];
    store = DirectStore{static_cast<int32_t>(t), DirectStore::kNothing, -1};
    const int64_t position = a.positions[flat];
    if (position < 0) continue;
    const int64_t p = layout_physical(a.ids, flat, a.num_experts, a.physical);
    const int64_t index = a.first_index[p] + position - a.own_begin[p];
    if (index >= g.capacity) continue;  // the expert's block is full: dropped
    const int32_t owner = g.owner[p];
    store.rank = owner;
    store.row = (p - g.rank_begin[owner]) * g.capacity + index;
    ++delivered;
  }
  return delivered;
}

/// Token `t`'s combine terms, slots ascending, from its stores: terms[first ..] with `first`
/// the terms of the tokens before it.
FUSCO_HOST_DEVICE inline void token_terms(const DirectStore* stores, int64_t topk, int64_t t,
                                          int64_t first, DirectTerm* terms) {
  for (int64_t j = 0; j < topk; ++j) {
    const DirectStore& store = stores[t * topk + j];
    if (store.rank == DirectStore::kNothing) continue;
    terms[first++] = DirectTerm{store.rank, static_cast<int32_t>(j), store.row};
  }
}

}  // namespace fusco::core
