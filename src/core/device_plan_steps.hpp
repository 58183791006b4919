#pragma once

// Planning on the GPU, per expert and per token, for ranks of one node: every rank lays out
// its own routing (core/layout_steps.hpp), publishes its per-expert row counts to the group (a
// [W, P + 1] matrix of layout expert_begin rows), and after one barrier derives from that
// matrix where each of its (token, slot) pairs lands, which pairs find no room, its combine
// terms, and its own experts' row counts. The receive shapes are known on the host before the
// data moves, so no host synchronisation sits between routing and dispatch:
//   - capacity layout: [local experts * capacity, H]; an expert keeps its first `capacity` rows;
//   - expert-major layout: a bound on the rows, by default the most that can arrive (every
//     rank's T * k, plus alignment padding); each expert's block is its rows rounded up to the
//     alignment, blocks back to back; rows at or past the bound find no room.
// The order equals the CPU planner's: inside an expert's block, source rank, then token, then
// slot. These functions compile for host and device, so the CPU tests run the arithmetic the
// kernels run.

#include <cstdint>

#include "core/direct_steps.hpp"
#include "core/layout_steps.hpp"
#include "fusco/host_device.hpp"

namespace fusco::core {

/// What the planning steps read of the group: the count matrix and the expert map, all in
/// memory the running thread can read (device memory on the GPU), and the receive layout.
struct GroupCounts {
  /// [world][physical + 1]: row r is rank r's layout expert_begin (its rows to each physical
  /// expert are row[p + 1] - row[p]).
  const int64_t* begins = nullptr;
  int64_t physical = 0;                 ///< P
  int world = 0;                        ///< W
  const int32_t* owner = nullptr;       ///< [P] rank of each physical expert.
  const int64_t* rank_begin = nullptr;  ///< [W + 1] first physical expert of each rank.
  int64_t capacity = 0;                 ///< Capacity layout: rows of every expert's block.
  int64_t alignment = 1;                ///< Expert-major: block rows are a multiple of this.
  int64_t recv_rows = 0;  ///< Expert-major: rows of every rank's receive buffer (the bound).
  bool capacity_layout = false;
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

/// Rows of expert `p`'s block: the capacity, or its rows rounded up to the alignment.
FUSCO_HOST_DEVICE inline int64_t block_rows(const GroupCounts& g, int64_t p) {
  if (g.capacity_layout) return g.capacity;
  const int64_t rows = expert_rows(g, p);
  return (rows + g.alignment - 1) / g.alignment * g.alignment;
}

/// First row of expert `p`'s block in its owner's receive buffer: the blocks of the owner's
/// experts before it.
FUSCO_HOST_DEVICE inline int64_t block_begin(const GroupCounts& g, int64_t p) {
  const int64_t first = g.rank_begin[g.owner[p]];
  if (g.capacity_layout) return (p - first) * g.capacity;
  int64_t row = 0;
  for (int64_t q = first; q < p; ++q) row += block_rows(g, q);
  return row;
}

/// The end of the rows expert `p`'s rows may take: its block's end under a capacity, the
/// buffer's bound for expert-major.
FUSCO_HOST_DEVICE inline int64_t row_limit(const GroupCounts& g, int64_t begin) {
  return g.capacity_layout ? begin + g.capacity : g.recv_rows;
}

/// Where expert `p`'s rows go in its owner's buffer and how many of them it keeps.
struct ExpertPlace {
  int64_t begin = 0;  ///< First row of the block.
  int64_t limit = 0;  ///< Rows at or past this one find no room.
  int64_t rows = 0;   ///< Rows sent to the expert by all ranks.
  int64_t kept = 0;   ///< Rows delivered: those below the limit.
  int64_t block = 0;  ///< Rows of the block (capacity, or rows rounded up to the alignment).

  /// Rows of the block left unfilled (zeroed by dispatch): [begin + kept, unfilled_end()).
  FUSCO_HOST_DEVICE int64_t unfilled_end() const {
    return begin + block < limit ? begin + block : limit;
  }
};

FUSCO_HOST_DEVICE inline ExpertPlace expert_place(const GroupCounts& g, int64_t p) {
  ExpertPlace place;
  place.begin = block_begin(g, p);
  place.limit = row_limit(g, place.begin);
  place.rows = expert_rows(g, p);
  place.block = block_rows(g, p);
  const int64_t room = place.limit - place.begin;
  place.kept = room <= 0 ? 0 : (place.rows < room ? place.rows : room);
  return place;
}

/// Kept rows of expert `p` (what its owner's tokens_per_expert says).
FUSCO_HOST_DEVICE inline int64_t kept_rows(const GroupCounts& g, int64_t p) {
  return expert_place(g, p).kept;
}

/// What one rank's planning kernels read and write besides the group's counts.
template <typename Id>
struct TokenPlanning {
  const Id* ids = nullptr;  ///< [T, k] this rank's topk_idx.
  int64_t topk = 0;
  int64_t num_experts = 0;             ///< Logical experts E.
  const int64_t* physical = nullptr;   ///< [E] physical expert of each logical one.
  const int64_t* positions = nullptr;  ///< [T * k] layout positions (-1: nothing to place).
  const int64_t* own_begin = nullptr;  ///< [P + 1] this rank's layout expert_begin.
  /// [P] the row of this rank's first row for each expert in the owner's buffer:
  /// block_begin(p) + rows_before_rank(rank, p).
  const int64_t* first_row = nullptr;
  const int64_t* limit = nullptr;  ///< [P] row_limit of each expert.
};

/// Stores token `t`'s pairs (stores[t * k + j], rank kNothing for a masked slot, an id outside
/// [-1, E) or a row that finds no room) and returns how many rows it delivers.
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
    const int64_t row = a.first_row[p] + position - a.own_begin[p];
    if (row >= a.limit[p]) continue;  // no room: dropped
    store.rank = g.owner[p];
    store.row = row;
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
