#pragma once

// The layout step: which (token, slot) rows go to which physical expert, in receive order.

#include <cstdint>
#include <vector>

#include "fusco/expert_map.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"

namespace fusco::core {

/// An expert map resolved for E experts and W ranks. Physical experts are the copies ranks
/// hold, numbered rank-major: rank r's local slot s is physical expert rank_begin[r] + s, and
/// a rank's slots follow ascending logical expert id. Without replicas, physical experts and
/// logical experts correspond one to one.
struct ResolvedExpertMap {
  int64_t num_experts = 0;
  int world_size = 0;
  std::vector<int32_t> owner;       ///< owner[e]: rank of logical expert e's primary copy.
  std::vector<int32_t> local_slot;  ///< local_slot[e]: slot of that copy on its rank.
  std::vector<int64_t> physical;    ///< physical[e]: rank_begin[owner[e]] + local_slot[e].
  std::vector<int64_t> rank_begin;  ///< W + 1 entries: physical experts of rank r.
  /// E + 1 offsets into `replica_physical`: the copies of expert e in the map's list order
  /// (the primary first). One copy per expert without replicas.
  std::vector<int64_t> replica_begin;
  std::vector<int64_t> replica_physical;
  std::vector<int32_t> physical_owner;    ///< Rank of each physical expert.
  std::vector<int64_t> physical_logical;  ///< Logical expert of each physical expert.
  bool replicated = false;                ///< Some expert has more than one copy.

  int64_t num_local(int rank) const { return rank_begin[rank + 1] - rank_begin[rank]; }
  int64_t num_physical() const { return rank_begin.back(); }
  int64_t num_replicas(int64_t expert) const {
    return replica_begin[static_cast<size_t>(expert) + 1] -
           replica_begin[static_cast<size_t>(expert)];
  }
  /// The map whose experts are this map's physical experts, one copy each: routing already
  /// translated to physical ids is laid out and planned with it.
  ResolvedExpertMap physical_map() const;
};

/// Resolves `map` (validated here) for `num_experts` and `world_size`.
Result<ResolvedExpertMap> resolve_expert_map(const ExpertMap& map, int64_t num_experts,
                                             int world_size);

/// Valid (token, slot) pairs of one rank sorted by (physical expert, token, slot) with a
/// counting sort: O(T*k + E) time and memory.
struct Layout {
  int64_t num_tokens = 0;
  int topk = 0;
  /// P + 1 offsets into `pairs`: the pairs of physical expert p are
  /// pairs[expert_begin[p] .. expert_begin[p + 1]).
  std::vector<int64_t> expert_begin;
  /// Flat indices token * topk + slot of the valid pairs, in (physical expert, token, slot)
  /// order.
  std::vector<int64_t> pairs;

  int64_t num_rows() const { return expert_begin.empty() ? 0 : expert_begin.back(); }
};

/// The most rows an expert-major receive buffer of `map`'s group can need: every pair of
/// every rank (`tokens[r]` tokens of `topk` slots) sent to one rank, plus the alignment padding
/// of the rank holding the most experts. What a receive buffer sized before the counts are
/// known must hold (planning on the device).
int64_t most_recv_rows(const std::vector<int64_t>& tokens, int topk, const ResolvedExpertMap& map,
                       int64_t alignment);

/// Largest top-k fusco accepts.
inline constexpr int kMaxTopk = 1024;

/// Reads expert id (t, j) of an int32 or int64 topk tensor.
inline int64_t read_expert(const TensorView& topk_idx, int64_t flat) {
  return topk_idx.dtype == DType::kInt32 ? static_cast<const int32_t*>(topk_idx.data)[flat]
                                         : static_cast<const int64_t*>(topk_idx.data)[flat];
}

/// Checks `topk_idx`: 2-D host int32/int64, 1 <= k <= kMaxTopk, T < 2^31.
Status check_topk_idx(const TensorView& topk_idx);

/// Builds the layout of `topk_idx` ([T, k], -1 = unused slot) under `map`. Fails with
/// kInvalidArgument naming the first id outside [-1, E) (its token, slot and value).
Result<Layout> build_layout(const TensorView& topk_idx, const ResolvedExpertMap& map);

/// The counting half of build_layout: validates the ids and fills expert_begin only (pairs
/// stays empty). The planner places pairs itself while it scans them.
Result<Layout> count_layout(const TensorView& topk_idx, const ResolvedExpertMap& map);

}  // namespace fusco::core
