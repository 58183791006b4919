#include "core/host_planning.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

namespace fusco::core {

namespace {

// Per (expert, chunk): how many of the chunk's pairs go to the expert (the count kernel);
// the first bad pair into *first_bad.
template <typename Id>
std::vector<int64_t> chunk_counts(const LayoutArgs& a, const Id* ids, int64_t chunks) {
  std::vector<int64_t> counts(static_cast<size_t>(a.num_physical * chunks), 0);
  *a.first_bad = std::numeric_limits<int64_t>::max();
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = layout_chunk_begin(c + 1, a.num_tokens, a.topk);
    for (int64_t flat = layout_chunk_begin(c, a.num_tokens, a.topk); flat < end; ++flat) {
      const int64_t p = layout_physical(ids, flat, a.num_experts, a.physical);
      if (p >= 0) ++counts[static_cast<size_t>(layout_counter(p, c, chunks))];
      if (p == -2) *a.first_bad = std::min(*a.first_bad, flat);
    }
  }
  return counts;
}

// One warp's 32 pairs from `first` (the place kernel): positions, and the chunk's cursors
// advanced as the group's last lane advances them.
template <typename Id>
void place_warp(const LayoutArgs& a, const Id* ids, int64_t chunk, int64_t chunks, int64_t first,
                std::vector<int64_t>& cursors) {
  const int64_t end = layout_chunk_begin(chunk + 1, a.num_tokens, a.topk);
  int64_t p[kLayoutWarp];
  for (int lane = 0; lane < kLayoutWarp; ++lane) {
    const int64_t flat = first + lane;
    p[lane] = flat < end ? layout_physical(ids, flat, a.num_experts, a.physical) : -3;
  }
  uint32_t same[kLayoutWarp];
  for (int lane = 0; lane < kLayoutWarp; ++lane) {  // __match_any_sync
    same[lane] = 0;
    for (int other = 0; other < kLayoutWarp; ++other) {
      same[lane] |= p[other] == p[lane] ? uint32_t{1} << other : 0u;
    }
  }
  int64_t position[kLayoutWarp];
  for (int lane = 0; lane < kLayoutWarp; ++lane) {
    position[lane] = p[lane] >= 0
                         ? cursors[static_cast<size_t>(layout_counter(p[lane], chunk, chunks))] +
                               layout_rank_in_group(same[lane], lane)
                         : -1;
  }
  for (int lane = 0; lane < kLayoutWarp; ++lane) {  // after __syncwarp
    if (p[lane] >= 0 && layout_last_in_group(same[lane], lane)) {
      cursors[static_cast<size_t>(layout_counter(p[lane], chunk, chunks))] +=
          __builtin_popcount(same[lane]);
    }
    if (first + lane < end) a.positions[first + lane] = position[lane];
  }
}

template <typename Id>
void layout_ids(const LayoutArgs& a) {
  const auto* ids = static_cast<const Id*>(a.topk_idx);
  const int64_t chunks = layout_chunks(a.num_tokens);
  const std::vector<int64_t> counts = chunk_counts(a, ids, chunks);
  std::vector<int64_t> cursors(counts.size());
  std::exclusive_scan(counts.begin(), counts.end(), cursors.begin(), int64_t{0});
  const int64_t total = counts.empty() ? 0 : cursors.back() + counts.back();
  for (int64_t p = 0; p < a.num_physical; ++p) {  // no chunks (no tokens): every expert empty
    a.expert_begin[p] =
        chunks == 0 ? 0 : cursors[static_cast<size_t>(layout_counter(p, 0, chunks))];
  }
  a.expert_begin[a.num_physical] = total;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = layout_chunk_begin(c + 1, a.num_tokens, a.topk);
    for (int64_t first = layout_chunk_begin(c, a.num_tokens, a.topk); first < end;
         first += kLayoutWarp) {
      place_warp(a, ids, c, chunks, first, cursors);
    }
  }
}

// The token kernel and the scan of its counts, then the terms kernel.
template <typename Id>
void place_tokens(const DevicePlanningArgs& a) {
  const TokenPlanning<Id> planning = token_planning<Id>(a);
  a.group_term_begin[0] = 0;
  for (int64_t t = 0; t <= a.num_tokens; ++t) {
    a.token_group_begin[t] = t;
    if (t < a.num_tokens) {
      a.group_term_begin[t + 1] =
          a.group_term_begin[t] + place_token(a.group, planning, t, a.stores);
    }
  }
  for (int64_t t = 0; t < a.num_tokens; ++t) {
    token_terms(a.stores, a.topk, t, a.group_term_begin[t], a.terms);
  }
}

}  // namespace

void layout_on_host(const LayoutArgs& args) {
  if (args.ids_int64) {
    layout_ids<int64_t>(args);
  } else {
    layout_ids<int32_t>(args);
  }
}

void record_bad_id_on_host(const LayoutArgs& args, int64_t* bad) {
  const int64_t flat = *args.first_bad;
  if (flat == std::numeric_limits<int64_t>::max()) {
    bad[0] = -1;
    bad[1] = 0;
    return;
  }
  bad[0] = flat;
  bad[1] = args.ids_int64 ? static_cast<const int64_t*>(args.topk_idx)[flat]
                          : static_cast<const int32_t*>(args.topk_idx)[flat];
}

void planning_on_host(const DevicePlanningArgs& args) {
  for (int64_t p = 0; p < args.group.physical; ++p) plan_expert(args, p);
  if (args.ids_int64) {
    place_tokens<int64_t>(args);
  } else {
    place_tokens<int32_t>(args);
  }
}

}  // namespace fusco::core
