#include "plan/replica_choice.hpp"

#include <algorithm>
#include <numeric>
#include <string>

namespace fusco::plan {

ReplicatedExperts::ReplicatedExperts(const core::ResolvedExpertMap& map)
    : index_of(static_cast<size_t>(map.num_experts), -1) {
  for (int64_t e = 0; e < map.num_experts; ++e) {
    if (map.num_replicas(e) > 1) {
      index_of[static_cast<size_t>(e)] = count();
      experts.push_back(e);
    }
  }
}

SenderDemand sender_demand(const core::Layout& layout, const core::ResolvedExpertMap& map,
                           const ReplicatedExperts& replicated) {
  // The layout is keyed by each expert's primary copy, which no other expert shares.
  auto rows_of = [&](int64_t e) {
    const auto p = static_cast<size_t>(map.physical[static_cast<size_t>(e)]);
    return layout.expert_begin[p + 1] - layout.expert_begin[p];
  };
  SenderDemand demand;
  demand.single_rows_per_rank.assign(static_cast<size_t>(map.world_size), 0);
  for (int64_t e = 0; e < map.num_experts; ++e) {
    if (replicated.index_of[static_cast<size_t>(e)] < 0) {
      demand.single_rows_per_rank[static_cast<size_t>(map.owner[static_cast<size_t>(e)])] +=
          rows_of(e);
    }
  }
  for (int64_t e : replicated.experts) {
    demand.replicated_rows.push_back(rows_of(e));
  }
  return demand;
}

namespace {

// The candidates' loads after `rows` successive picks of the least loaded candidate (ties:
// lowest rank), starting from `load` (one entry per candidate), in closed form: raise the
// least loaded to a common level, then one more row each to the lowest ranks at that level.
std::vector<int64_t> water_filled(int64_t rows, const std::vector<int32_t>& ranks,
                                  const std::vector<int64_t>& load) {
  const size_t n = ranks.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return load[a] != load[b] ? load[a] < load[b] : ranks[a] < ranks[b];
  });
  int64_t left = rows;
  int64_t level = load[order[0]];
  size_t m = 1;  // candidates raised to `level`
  while (left > 0 && m < n) {
    const int64_t cost = (load[order[m]] - level) * static_cast<int64_t>(m);
    if (cost > left) {
      break;
    }
    left -= cost;
    level = load[order[m]];
    ++m;
  }
  level += left / static_cast<int64_t>(m);
  left %= static_cast<int64_t>(m);
  std::vector<size_t> at_level(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(m));
  std::sort(at_level.begin(), at_level.end(),
            [&](size_t a, size_t b) { return ranks[a] < ranks[b]; });
  std::vector<int64_t> filled = load;
  for (size_t i : at_level) {
    filled[i] = level + (left > 0 ? 1 : 0);
    left -= left > 0 ? 1 : 0;
  }
  return filled;
}

}  // namespace

ReplicaChoice choose_replicas(const core::ResolvedExpertMap& map,
                              const ReplicatedExperts& replicated, const Topology& topology,
                              const ReplicaDemand& demand, int sender) {
  const int world = map.world_size;
  const int64_t count = replicated.count();
  ReplicaChoice choice;
  choice.quota_begin.assign(static_cast<size_t>(count) + 1, 0);
  for (int64_t i = 0; i < count; ++i) {
    choice.quota_begin[static_cast<size_t>(i) + 1] =
        choice.quota_begin[static_cast<size_t>(i)] +
        map.num_replicas(replicated.experts[static_cast<size_t>(i)]);
  }
  choice.quota.assign(static_cast<size_t>(choice.quota_begin.back()), 0);
  choice.rows_unbalanced = demand.base_rows;
  std::vector<int64_t> load = demand.base_rows;
  auto rows_of = [&](int s, int64_t i) {
    return demand
        .rows[static_cast<size_t>(s) * static_cast<size_t>(count) + static_cast<size_t>(i)];
  };
  auto copy_rank = [&](int64_t i, size_t c) {
    const int64_t e = replicated.experts[static_cast<size_t>(i)];
    return map.physical_owner[static_cast<size_t>(
        map.replica_physical[static_cast<size_t>(map.replica_begin[static_cast<size_t>(e)]) + c])];
  };
  auto copies = [&](int64_t i) {
    return static_cast<size_t>(map.num_replicas(replicated.experts[static_cast<size_t>(i)]));
  };
  int64_t* quota = choice.quota.data();

  // Phase 1: a sender holding a copy keeps its rows.
  for (int64_t i = 0; i < count; ++i) {
    int64_t total = 0;
    for (int s = 0; s < world; ++s) total += rows_of(s, i);
    choice.rows_unbalanced[static_cast<size_t>(copy_rank(i, 0))] += total;
    for (size_t c = 0; c < copies(i); ++c) {
      const int32_t r = copy_rank(i, c);
      load[static_cast<size_t>(r)] += rows_of(r, i);
      if (r == sender) quota[choice.quota_begin[static_cast<size_t>(i)] + c] += rows_of(r, i);
    }
  }
  // Phases 2 and 3: the blocks of one expert that share a candidate set form one run of
  // one-at-a-time picks in sender order, so the run is water-filled at once and each sender
  // takes the picks at its position in the run: filled(before + own) - filled(before).
  std::vector<int64_t> holder(static_cast<size_t>(world), -1);  // rank -> expert
  std::vector<int64_t> node_with_copy(static_cast<size_t>(topology.num_nodes()), -1);
  std::vector<size_t> candidates;
  std::vector<int32_t> ranks;
  std::vector<int64_t> start;
  auto fill_run = [&](int64_t i, int64_t before, int64_t own, int64_t total) {
    start.clear();
    for (int32_t r : ranks) start.push_back(load[static_cast<size_t>(r)]);
    if (own > 0) {
      const std::vector<int64_t> a = water_filled(before, ranks, start);
      const std::vector<int64_t> b = water_filled(before + own, ranks, start);
      for (size_t k = 0; k < candidates.size(); ++k) {
        quota[choice.quota_begin[static_cast<size_t>(i)] + candidates[k]] += b[k] - a[k];
      }
    }
    const std::vector<int64_t> after = water_filled(total, ranks, start);
    for (size_t k = 0; k < ranks.size(); ++k) load[static_cast<size_t>(ranks[k])] = after[k];
  };
  for (int phase = 2; phase <= 3; ++phase) {
    for (int64_t i = 0; i < count; ++i) {
      for (size_t c = 0; c < copies(i); ++c) {
        holder[static_cast<size_t>(copy_rank(i, c))] = i;
        node_with_copy[static_cast<size_t>(topology.node_of(copy_rank(i, c)))] = i;
      }
      auto in_run = [&](int s) {  // the sender's block of expert i belongs to this phase
        return holder[static_cast<size_t>(s)] != i &&
               (node_with_copy[static_cast<size_t>(topology.node_of(s))] == i) == (phase == 2);
      };
      if (phase == 3) {
        candidates.clear();
        ranks.clear();
        for (size_t c = 0; c < copies(i); ++c) {
          candidates.push_back(c);
          ranks.push_back(copy_rank(i, c));
        }
        int64_t total = 0;
        int64_t before = 0;
        for (int s = 0; s < world; ++s) {
          if (!in_run(s)) continue;
          if (s < sender) before += rows_of(s, i);
          total += rows_of(s, i);
        }
        fill_run(i, before, in_run(sender) ? rows_of(sender, i) : 0, total);
        continue;
      }
      // Phase 2: one run per node holding copies; its senders are the node's ranks.
      for (size_t c0 = 0; c0 < copies(i); ++c0) {
        const int node = topology.node_of(copy_rank(i, c0));
        bool first = true;
        for (size_t c = 0; c < c0; ++c) first = first && topology.node_of(copy_rank(i, c)) != node;
        if (!first) continue;
        candidates.clear();
        ranks.clear();
        for (size_t c = c0; c < copies(i); ++c) {
          if (topology.node_of(copy_rank(i, c)) == node) {
            candidates.push_back(c);
            ranks.push_back(copy_rank(i, c));
          }
        }
        int64_t total = 0;
        int64_t before = 0;
        const int lo = topology.node_first_rank(node);
        for (int s = lo; s < lo + topology.node_size(node); ++s) {
          if (!in_run(s)) continue;
          if (s < sender) before += rows_of(s, i);
          total += rows_of(s, i);
        }
        const bool mine = topology.node_of(sender) == node && in_run(sender);
        fill_run(i, before, mine ? rows_of(sender, i) : 0, total);
      }
    }
  }
  choice.rows_balanced = std::move(load);
  return choice;
}

template <typename Id>
Result<std::vector<int64_t>> to_physical_ids(const Id* ids, int64_t count,
                                             const core::ResolvedExpertMap& map,
                                             const ReplicatedExperts& replicated,
                                             const ReplicaChoice& choice) {
  std::vector<int64_t> left = choice.quota;
  // cursor[i]: the copy (index into quota) expert i's next row goes to.
  std::vector<int64_t> cursor(choice.quota_begin.begin(), choice.quota_begin.end() - 1);
  std::vector<int64_t> physical(static_cast<size_t>(count));
  for (int64_t flat = 0; flat < count; ++flat) {
    const auto expert = static_cast<int64_t>(ids[flat]);
    if (expert < 0) {
      physical[static_cast<size_t>(flat)] = -1;
      continue;
    }
    const int64_t i = replicated.index_of[static_cast<size_t>(expert)];
    if (i < 0) {
      physical[static_cast<size_t>(flat)] = map.physical[static_cast<size_t>(expert)];
      continue;
    }
    int64_t& at = cursor[static_cast<size_t>(i)];
    const int64_t end = choice.quota_begin[static_cast<size_t>(i) + 1];
    while (at < end && left[static_cast<size_t>(at)] == 0) {
      ++at;
    }
    if (at == end) {
      return Status(StatusCode::kInternal, "replica quotas of expert " + std::to_string(expert) +
                                               " cover fewer rows than this rank routes to it");
    }
    --left[static_cast<size_t>(at)];
    const int64_t copy = at - choice.quota_begin[static_cast<size_t>(i)];
    physical[static_cast<size_t>(flat)] = map.replica_physical[static_cast<size_t>(
        map.replica_begin[static_cast<size_t>(expert)] + copy)];
  }
  return physical;
}

Result<PhysicalRouting> route_to_copies(const TensorView& topk_idx, const core::Layout& layout,
                                        const core::ResolvedExpertMap& map,
                                        const ReplicatedExperts& replicated,
                                        const ReplicaChoice& choice) {
  PhysicalRouting routed;
  routed.num_tokens = layout.num_tokens;
  routed.topk = layout.topk;
  const int64_t count = layout.num_tokens * layout.topk;
  Result<std::vector<int64_t>> ids =
      topk_idx.dtype == DType::kInt32 ? to_physical_ids(static_cast<const int32_t*>(topk_idx.data),
                                                        count, map, replicated, choice)
                                      : to_physical_ids(static_cast<const int64_t*>(topk_idx.data),
                                                        count, map, replicated, choice);
  FUSCO_RETURN_IF_ERROR(ids.status());
  routed.ids = std::move(ids).value();
  routed.map = map.physical_map();
  Result<core::Layout> physical_layout = core::count_layout(routed.view(), routed.map);
  FUSCO_RETURN_IF_ERROR(physical_layout.status());
  routed.layout = std::move(physical_layout).value();
  return routed;
}

template Result<std::vector<int64_t>> to_physical_ids(const int32_t*, int64_t,
                                                      const core::ResolvedExpertMap&,
                                                      const ReplicatedExperts&,
                                                      const ReplicaChoice&);
template Result<std::vector<int64_t>> to_physical_ids(const int64_t*, int64_t,
                                                      const core::ResolvedExpertMap&,
                                                      const ReplicatedExperts&,
                                                      const ReplicaChoice&);

}  // namespace fusco::plan
