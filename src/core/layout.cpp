#include "core/layout.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace fusco::core {

Result<ResolvedExpertMap> resolve_expert_map(const ExpertMap& map, int64_t num_experts,
                                             int world_size) {
  FUSCO_RETURN_IF_ERROR(map.validate(num_experts, world_size));
  ResolvedExpertMap resolved;
  resolved.num_experts = num_experts;
  resolved.world_size = world_size;
  const auto experts = static_cast<size_t>(num_experts);
  // Each expert's ranks, in list order; then every copy takes its rank's next local slot.
  resolved.replica_begin.assign(experts + 1, 0);
  std::vector<int32_t> copy_rank;
  copy_rank.reserve(experts);
  const int64_t per_rank = num_experts / world_size;
  for (size_t e = 0; e < experts; ++e) {
    if (map.has_replicas()) {
      const std::vector<int32_t>& ranks = map.replicas()[e];
      copy_rank.insert(copy_rank.end(), ranks.begin(), ranks.end());
      resolved.replicated = resolved.replicated || ranks.size() > 1;
    } else {
      copy_rank.push_back(map.is_contiguous()
                              ? static_cast<int32_t>(static_cast<int64_t>(e) / per_rank)
                              : map.owners()[e]);
    }
    resolved.replica_begin[e + 1] = static_cast<int64_t>(copy_rank.size());
  }
  std::vector<int64_t> copy_slot(copy_rank.size());
  std::vector<int64_t> next_slot(static_cast<size_t>(world_size), 0);
  for (size_t c = 0; c < copy_rank.size(); ++c) {
    copy_slot[c] = next_slot[static_cast<size_t>(copy_rank[c])]++;
  }
  resolved.rank_begin.assign(static_cast<size_t>(world_size) + 1, 0);
  for (int r = 0; r < world_size; ++r) {
    resolved.rank_begin[static_cast<size_t>(r) + 1] =
        resolved.rank_begin[static_cast<size_t>(r)] + next_slot[static_cast<size_t>(r)];
  }
  resolved.replica_physical.resize(copy_rank.size());
  resolved.physical_owner.resize(copy_rank.size());
  resolved.physical_logical.resize(copy_rank.size());
  for (size_t e = 0; e < experts; ++e) {
    for (auto c = static_cast<size_t>(resolved.replica_begin[e]);
         c < static_cast<size_t>(resolved.replica_begin[e + 1]); ++c) {
      const int64_t p = resolved.rank_begin[static_cast<size_t>(copy_rank[c])] + copy_slot[c];
      resolved.replica_physical[c] = p;
      resolved.physical_owner[static_cast<size_t>(p)] = copy_rank[c];
      resolved.physical_logical[static_cast<size_t>(p)] = static_cast<int64_t>(e);
    }
  }
  resolved.owner.resize(experts);
  resolved.local_slot.resize(experts);
  resolved.physical.resize(experts);
  for (size_t e = 0; e < experts; ++e) {
    const auto primary = static_cast<size_t>(resolved.replica_begin[e]);
    resolved.owner[e] = copy_rank[primary];
    resolved.local_slot[e] = static_cast<int32_t>(copy_slot[primary]);
    resolved.physical[e] = resolved.replica_physical[primary];
  }
  return resolved;
}

ResolvedExpertMap ResolvedExpertMap::physical_map() const {
  ResolvedExpertMap map;
  const int64_t count = num_physical();
  map.num_experts = count;
  map.world_size = world_size;
  map.rank_begin = rank_begin;
  map.owner = physical_owner;
  map.physical_owner = physical_owner;
  map.local_slot.resize(static_cast<size_t>(count));
  map.physical.resize(static_cast<size_t>(count));
  map.physical_logical.resize(static_cast<size_t>(count));
  map.replica_physical.resize(static_cast<size_t>(count));
  map.replica_begin.resize(static_cast<size_t>(count) + 1);
  for (int64_t p = 0; p < count; ++p) {
    const auto i = static_cast<size_t>(p);
    map.local_slot[i] =
        static_cast<int32_t>(p - rank_begin[static_cast<size_t>(physical_owner[i])]);
    map.physical[i] = p;
    map.physical_logical[i] = p;
    map.replica_physical[i] = p;
    map.replica_begin[i] = p;
  }
  map.replica_begin[static_cast<size_t>(count)] = count;
  return map;
}

int64_t most_recv_rows(const std::vector<int64_t>& tokens, int topk, const ResolvedExpertMap& map,
                       int64_t alignment) {
  int64_t pairs = 0;
  for (int64_t t : tokens) pairs += t * topk;
  int64_t most_local = 0;
  for (int r = 0; r < map.world_size; ++r) most_local = std::max(most_local, map.num_local(r));
  return pairs + most_local * (alignment - 1);
}

Status check_topk_idx(const TensorView& topk_idx) {
  FUSCO_RETURN_IF_ERROR(check_matrix(topk_idx, "topk_idx"));
  if (topk_idx.dtype != DType::kInt32 && topk_idx.dtype != DType::kInt64) {
    return Status(
        StatusCode::kInvalidArgument,
        std::string("topk_idx must be int32 or int64, got ") + dtype_name(topk_idx.dtype));
  }
  const int64_t topk = topk_idx.shape[1];
  if (topk < 1 || topk > kMaxTopk) {
    return Status(StatusCode::kInvalidArgument,
                  "topk_idx has k = " + std::to_string(topk) +
                      " slots per token; expected 1 <= k <= " + std::to_string(kMaxTopk));
  }
  if (topk_idx.shape[0] > std::numeric_limits<int32_t>::max()) {
    return Status(StatusCode::kInvalidArgument, "topk_idx has " +
                                                    std::to_string(topk_idx.shape[0]) +
                                                    " tokens; at most 2^31 - 1 are supported");
  }
  return Status();
}

namespace {

template <typename Id>
Status count_and_place(const Id* ids, const ResolvedExpertMap& map, bool place, Layout& layout) {
  const int64_t num_pairs = layout.num_tokens * layout.topk;
  const int64_t num_physical = map.rank_begin.back();
  layout.expert_begin.assign(static_cast<size_t>(num_physical) + 1, 0);
  // Pass 1: validate and count rows per physical expert (shifted by one for the scan).
  int64_t valid = 0;
  for (int64_t flat = 0; flat < num_pairs; ++flat) {
    const auto expert = static_cast<int64_t>(ids[flat]);
    if (expert == -1) {
      continue;
    }
    if (expert < -1 || expert >= map.num_experts) {
      return Status(StatusCode::kInvalidArgument,
                    "topk_idx[" + std::to_string(flat / layout.topk) + ", " +
                        std::to_string(flat % layout.topk) + "] = " + std::to_string(expert) +
                        " is outside [-1, num_experts=" + std::to_string(map.num_experts) + ")");
    }
    ++layout.expert_begin[static_cast<size_t>(map.physical[static_cast<size_t>(expert)]) + 1];
    ++valid;
  }
  // Pass 2: inclusive scan of the shifted counts gives each expert's first position.
  for (int64_t p = 0; p < num_physical; ++p) {
    layout.expert_begin[static_cast<size_t>(p) + 1] += layout.expert_begin[static_cast<size_t>(p)];
  }
  if (!place) {
    return Status();
  }
  // Pass 3: stable placement; scanning pairs in (token, slot) order keeps that order per expert.
  layout.pairs.resize(static_cast<size_t>(valid));
  std::vector<int64_t> cursor(layout.expert_begin.begin(), layout.expert_begin.end() - 1);
  for (int64_t flat = 0; flat < num_pairs; ++flat) {
    const auto expert = static_cast<int64_t>(ids[flat]);
    if (expert >= 0) {
      const auto p = static_cast<size_t>(map.physical[static_cast<size_t>(expert)]);
      layout.pairs[static_cast<size_t>(cursor[p]++)] = flat;
    }
  }
  return Status();
}

Result<Layout> make_layout(const TensorView& topk_idx, const ResolvedExpertMap& map, bool place) {
  FUSCO_RETURN_IF_ERROR(check_topk_idx(topk_idx));
  Layout layout;
  layout.num_tokens = topk_idx.shape[0];
  layout.topk = static_cast<int>(topk_idx.shape[1]);
  if (topk_idx.dtype == DType::kInt32) {
    FUSCO_RETURN_IF_ERROR(
        count_and_place(static_cast<const int32_t*>(topk_idx.data), map, place, layout));
  } else {
    FUSCO_RETURN_IF_ERROR(
        count_and_place(static_cast<const int64_t*>(topk_idx.data), map, place, layout));
  }
  return layout;
}

}  // namespace

Result<Layout> build_layout(const TensorView& topk_idx, const ResolvedExpertMap& map) {
  return make_layout(topk_idx, map, true);
}

Result<Layout> count_layout(const TensorView& topk_idx, const ResolvedExpertMap& map) {
  return make_layout(topk_idx, map, false);
}

}  // namespace fusco::core
