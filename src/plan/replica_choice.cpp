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

namespace {

// Adds `rows` to the candidates' loads as `rows` successive picks of the least loaded
// candidate (ties: lowest rank) would; returns each candidate's share. `ranks` and the
// result are in the caller's candidate order.
std::vector<int64_t> water_fill(int64_t rows, const std::vector<int32_t>& ranks,
                                std::vector<int64_t>& load) {
  const size_t n = ranks.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t la = load[static_cast<size_t>(ranks[a])];
    const int64_t lb = load[static_cast<size_t>(ranks[b])];
    return la != lb ? la < lb : ranks[a] < ranks[b];
  });
  auto load_at = [&](size_t i) { return load[static_cast<size_t>(ranks[order[i]])]; };
  // Raise the `level` of the `m` least loaded candidates until the rows run out.
  int64_t left = rows;
  int64_t level = n == 0 ? 0 : load_at(0);
  size_t m = 1;
  while (left > 0 && m < n) {
    const int64_t cost = (load_at(m) - level) * static_cast<int64_t>(m);
    if (cost > left) {
      break;
    }
    left -= cost;
    level = load_at(m);
    ++m;
  }
  const int64_t raise = left / static_cast<int64_t>(m);
  level += raise;
  left -= raise * static_cast<int64_t>(m);
  // The `left` < m rows beyond the level go to the lowest ranks among the m, one each.
  std::vector<size_t> at_level(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(m));
  std::sort(at_level.begin(), at_level.end(),
            [&](size_t a, size_t b) { return ranks[a] < ranks[b]; });
  std::vector<int64_t> share(n, 0);
  for (size_t i : at_level) {
    const int64_t target = level + (left > 0 ? 1 : 0);
    left -= left > 0 ? 1 : 0;
    int64_t& rank_load = load[static_cast<size_t>(ranks[i])];
    share[i] = target - rank_load;
    rank_load = target;
  }
  return share;
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
  auto copies_of = [&](int64_t i) {
    const int64_t e = replicated.experts[static_cast<size_t>(i)];
    return std::vector<int64_t>(
        map.replica_physical.begin() + map.replica_begin[static_cast<size_t>(e)],
        map.replica_physical.begin() + map.replica_begin[static_cast<size_t>(e) + 1]);
  };
  // done[s * count + i]: block (s, i) placed by an earlier phase.
  std::vector<uint8_t> done(static_cast<size_t>(world) * static_cast<size_t>(count), 0);
  auto record = [&](int s, int64_t i, size_t copy, int64_t rows) {
    if (s == sender) {
      choice.quota[static_cast<size_t>(choice.quota_begin[static_cast<size_t>(i)]) + copy] += rows;
    }
  };
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<int64_t> copies = copies_of(i);
    for (int s = 0; s < world; ++s) {
      const int64_t rows = rows_of(s, i);
      choice.rows_unbalanced[static_cast<size_t>(
          map.physical_owner[static_cast<size_t>(copies.front())])] += rows;
      for (size_t c = 0; c < copies.size(); ++c) {
        if (map.physical_owner[static_cast<size_t>(copies[c])] == s) {
          load[static_cast<size_t>(s)] += rows;
          record(s, i, c, rows);
          done[static_cast<size_t>(s) * static_cast<size_t>(count) + static_cast<size_t>(i)] = 1;
        }
      }
    }
  }
  for (int phase = 2; phase <= 3; ++phase) {
    for (int64_t i = 0; i < count; ++i) {
      const std::vector<int64_t> copies = copies_of(i);
      for (int s = 0; s < world; ++s) {
        uint8_t& placed =
            done[static_cast<size_t>(s) * static_cast<size_t>(count) + static_cast<size_t>(i)];
        if (placed != 0) {
          continue;
        }
        std::vector<size_t> candidates;
        std::vector<int32_t> ranks;
        for (size_t c = 0; c < copies.size(); ++c) {
          const int32_t rank = map.physical_owner[static_cast<size_t>(copies[c])];
          if (phase == 3 || topology.same_node(rank, s)) {
            candidates.push_back(c);
            ranks.push_back(rank);
          }
        }
        if (candidates.empty()) {
          continue;
        }
        const std::vector<int64_t> share = water_fill(rows_of(s, i), ranks, load);
        for (size_t k = 0; k < candidates.size(); ++k) {
          record(s, i, candidates[k], share[k]);
        }
        placed = 1;
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

template Result<std::vector<int64_t>> to_physical_ids(const int32_t*, int64_t,
                                                      const core::ResolvedExpertMap&,
                                                      const ReplicatedExperts&,
                                                      const ReplicaChoice&);
template Result<std::vector<int64_t>> to_physical_ids(const int64_t*, int64_t,
                                                      const core::ResolvedExpertMap&,
                                                      const ReplicatedExperts&,
                                                      const ReplicaChoice&);

}  // namespace fusco::plan
