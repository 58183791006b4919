#pragma once

// The arguments of planning on the GPU (kernels/layout.hpp, kernels/device_plan.hpp), in one
// CUDA-free place: the kernels and their host runs (core/host_planning.hpp) read the same.

#include <cstddef>
#include <cstdint>

#include "core/device_plan_steps.hpp"
#include "core/direct_steps.hpp"
#include "fusco/host_device.hpp"

namespace fusco::core {

struct LayoutArgs {
  const void* topk_idx = nullptr;  ///< [T, k] int32 or int64, device memory.
  bool ids_int64 = false;
  int64_t num_tokens = 0;
  int topk = 0;
  int64_t num_experts = 0;            ///< Logical experts E.
  const int64_t* physical = nullptr;  ///< [E] physical expert of each logical one, device.
  int64_t num_physical = 0;           ///< P.
  int64_t* positions = nullptr;       ///< [T * k] out: row in expert order, -1 unused slot.
  int64_t* expert_begin = nullptr;    ///< [P + 1] out: first row of each expert; [P] = rows.
  /// [1] out: the first pair (token * k + slot) whose id is outside [-1, E), or INT64_MAX.
  int64_t* first_bad = nullptr;
  void* workspace = nullptr;  ///< layout_workspace_bytes() bytes of device memory.
  size_t workspace_bytes = 0;
};

struct DevicePlanningArgs {
  GroupCounts group;  ///< The count matrix (every rank's layout written) and the map.
  int rank = 0;
  const void* topk_idx = nullptr;  ///< [T, k] int32 or int64, device memory.
  bool ids_int64 = false;
  int64_t num_tokens = 0;
  int64_t topk = 0;
  int64_t num_experts = 0;                ///< Logical experts E.
  const int64_t* physical = nullptr;      ///< [E] physical expert of each logical one.
  const int64_t* positions = nullptr;     ///< [T * k] this rank's layout positions.
  int64_t* first_row = nullptr;           ///< [P] out: this rank's first row of each expert.
  int64_t* limit = nullptr;               ///< [P] out: the row limit of each expert.
  DirectStore* stores = nullptr;          ///< [T * k] out: one per (token, slot).
  int64_t* token_group_begin = nullptr;   ///< [T + 1] out: token t is group t.
  int64_t* group_term_begin = nullptr;    ///< [T + 1] out: token t's terms.
  DirectTerm* terms = nullptr;            ///< [T * k] out: the first group_term_begin[T].
  int64_t* tokens_per_expert = nullptr;   ///< [local experts] out: rows kept.
  int64_t* dropped_per_expert = nullptr;  ///< [local experts] out: rows without room.
  int64_t* padded_per_expert = nullptr;   ///< [local experts] out: rows of each block.
  int64_t* unfilled = nullptr;  ///< [local experts][2] out: each block's rows left unfilled.
  void* workspace = nullptr;    ///< device_planning_workspace_bytes() bytes of device memory.
  size_t workspace_bytes = 0;
};

/// The expert kernel's work for physical expert `p`: where this rank's rows for it start in
/// its owner's buffer and their limit; for the rank's own experts, rows kept and dropped,
/// block rows, unfilled rows.
FUSCO_HOST_DEVICE inline void plan_expert(const DevicePlanningArgs& a, int64_t p) {
  const ExpertPlace place = expert_place(a.group, p);
  a.first_row[p] = place.begin + rows_before_rank(a.group, a.rank, p);
  a.limit[p] = place.limit;
  const int64_t own_first = a.group.rank_begin[a.rank];
  if (p < own_first || p >= a.group.rank_begin[a.rank + 1]) return;
  const int64_t s = p - own_first;
  a.tokens_per_expert[s] = place.kept;
  a.dropped_per_expert[s] = place.rows - place.kept;
  a.padded_per_expert[s] = place.block;
  a.unfilled[2 * s] = place.begin + place.kept;
  a.unfilled[2 * s + 1] = place.unfilled_end();
}

/// What the token kernel reads of `a` (ids of type Id).
template <typename Id>
FUSCO_HOST_DEVICE inline TokenPlanning<Id> token_planning(const DevicePlanningArgs& a) {
  TokenPlanning<Id> planning;
  planning.ids = static_cast<const Id*>(a.topk_idx);
  planning.topk = a.topk;
  planning.num_experts = a.num_experts;
  planning.physical = a.physical;
  planning.positions = a.positions;
  planning.own_begin = a.group.begins + static_cast<int64_t>(a.rank) * (a.group.physical + 1);
  planning.first_row = a.first_row;
  planning.limit = a.limit;
  return planning;
}

}  // namespace fusco::core
