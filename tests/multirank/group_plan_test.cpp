// plan_group: a whole group planned in one process. Its traffic must equal a brute-force count
// from the definitions, and what every rank's real (collective) plan reports.

#include "model/group_plan.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "fusco/fusco.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::plan {
namespace {

struct Group {
  Topology topology;
  int topk;
  int64_t experts;
  std::vector<std::vector<int64_t>> ids;  // per rank
  RoutingOf routing() const {
    return [this](int r) -> Result<std::vector<int64_t>> { return ids[static_cast<size_t>(r)]; };
  }
  int64_t tokens(int r) const {
    return static_cast<int64_t>(ids[static_cast<size_t>(r)].size()) / topk;
  }
};

Group make_group(uint64_t seed, int world, int ranks_per_node, int topk, int64_t experts) {
  Group g{Topology::nodes_of(world, ranks_per_node), topk, experts, {}};
  for (int r = 0; r < world; ++r) {
    std::mt19937_64 rng(seed * 131 + static_cast<uint64_t>(r));
    g.ids.push_back(testing::random_topk(7 + 5 * r % 23, topk, experts, 0.1, 0.05, rng));
  }
  return g;
}

// The traffic matrix by definition, contiguous map: per token, rows to ranks of the sender's
// node directly (one per slot); to a remote rank one per slot (none), one per (token, rank)
// (rank), or one per (token, node) to the rail relay, which forwards one per slot to the
// other destinations (node).
std::vector<int64_t> brute_force(const Group& g, Dedup dedup) {
  const int world = g.topology.world_size;
  const int64_t per_rank = g.experts / world;
  std::vector<int64_t> rows(static_cast<size_t>(world * world), 0);
  auto add = [&](int s, int d) { ++rows[static_cast<size_t>(s * world + d)]; };
  for (int s = 0; s < world; ++s) {
    for (int64_t t = 0; t < g.tokens(s); ++t) {
      std::set<int> ranks_seen;
      std::set<int> nodes_seen;
      for (int j = 0; j < g.topk; ++j) {
        const int64_t e = g.ids[static_cast<size_t>(s)][static_cast<size_t>(t * g.topk + j)];
        if (e < 0) continue;
        const int d = static_cast<int>(e / per_rank);
        const int node = g.topology.node_of(d);
        if (g.topology.same_node(s, d) || dedup == Dedup::kNone) {
          add(s, d);
        } else if (dedup == Dedup::kRank) {
          if (ranks_seen.insert(d).second) add(s, d);
        } else {
          const int relay = g.topology.rail_relay(node, s);
          if (nodes_seen.insert(node).second) add(s, relay);
          if (d != relay) add(relay, d);
        }
      }
    }
  }
  return rows;
}

TEST(GroupPlan, TrafficEqualsABruteForceCount_EveryDedupMode) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const int world = 7 + static_cast<int>(seed % 3);  // 7 and 8: a smaller last node
    const Group g = make_group(seed, world, 3, 4, world * static_cast<int64_t>(2 + seed % 3));
    for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
      PlanOptions options;
      options.dedup = dedup;
      Result<GroupTraffic> traffic =
          plan_group(g.topology, g.topk, g.experts, ExpertMap(), options, g.routing());
      ASSERT_TRUE(traffic.ok()) << traffic.status().to_string();
      EXPECT_EQ(traffic.value().rows, brute_force(g, dedup))
          << "seed " << seed << " dedup " << dedup_name(dedup);
    }
  }
}

TEST(GroupPlan, NodeDedupCrossesNodesTheMinimumNumberOfTimes) {
  const Group g = make_group(9, 8, 2, 6, 32);
  PlanOptions options;
  for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
    options.relay = relay;
    Result<GroupTraffic> traffic =
        plan_group(g.topology, g.topk, g.experts, ExpertMap(), options, g.routing());
    ASSERT_TRUE(traffic.ok());
    int64_t minimum = 0;
    int64_t crossing = 0;
    for (int s = 0; s < 8; ++s) {
      for (int64_t t = 0; t < g.tokens(s); ++t) {
        std::set<int> nodes;
        for (int j = 0; j < g.topk; ++j) {
          const int64_t e = g.ids[static_cast<size_t>(s)][static_cast<size_t>(t * g.topk + j)];
          if (e >= 0 && g.topology.node_of(static_cast<int>(e / 4)) != g.topology.node_of(s)) {
            nodes.insert(g.topology.node_of(static_cast<int>(e / 4)));
          }
        }
        minimum += static_cast<int64_t>(nodes.size());
      }
      for (int d = 0; d < 8; ++d) {
        crossing += g.topology.same_node(s, d) ? 0 : traffic.value().at(s, d);
      }
    }
    EXPECT_EQ(traffic.value().inter_node_rows, minimum) << relay_policy_name(relay);
    EXPECT_EQ(crossing, minimum);
  }
}

TEST(GroupPlan, EqualsWhatEveryRanksCollectivePlanReports) {
  // Replicated experts and the balanced relay included: the group planner and the collective
  // planner must make the very same plans.
  const Group g = make_group(4, 6, 3, 3, 8);
  const ExpertMap map =
      ExpertMap::with_replicas({{0, 4}, {1}, {2, 3, 0}, {3}, {4}, {5, 1}, {0}, {2}});
  PlanOptions options;
  options.relay = RelayPolicy::kBalanced;
  Result<GroupTraffic> traffic =
      plan_group(g.topology, g.topk, g.experts, map, options, g.routing());
  ASSERT_TRUE(traffic.ok()) << traffic.status().to_string();
  auto comms = Communicator::create_local(6, g.topology);
  ASSERT_TRUE(comms.ok());
  std::vector<PlanStats> stats(6);
  const auto statuses = testing::run_ranks(6, [&](int r) -> Status {
    std::vector<int64_t> ids = g.ids[static_cast<size_t>(r)];
    Result<Plan> plan = comms.value()[static_cast<size_t>(r)].plan(
        TensorView::host(ids.data(), DType::kInt64, {g.tokens(r), g.topk}), g.experts, map,
        options);
    FUSCO_RETURN_IF_ERROR(plan.status());
    stats[static_cast<size_t>(r)] = plan.value().stats();
    return Status();
  });
  ASSERT_TRUE(testing::first_error(statuses).ok());
  int64_t forwarded = 0;
  for (int s = 0; s < 6; ++s) {
    const PlanStats& st = stats[static_cast<size_t>(s)];
    EXPECT_EQ(traffic.value().received_rows[static_cast<size_t>(s)], st.received_rows);
    for (int d = 0; d < 6; ++d) {
      if (!g.topology.same_node(s, d)) {  // node peers' rows mix direct and forwarded
        EXPECT_EQ(traffic.value().at(s, d), st.wire_rows_per_destination[static_cast<size_t>(d)]);
      }
    }
    forwarded += st.relay_forwarded_rows;
  }
  EXPECT_EQ(traffic.value().relay_forwarded_rows, forwarded);
}

TEST(GroupPlan, BadRoutingNamesTheRank) {
  const Group g = make_group(2, 4, 2, 2, 8);
  Group bad = g;
  bad.ids[2][1] = 8;
  Result<GroupTraffic> traffic =
      plan_group(bad.topology, bad.topk, bad.experts, ExpertMap(), PlanOptions(), bad.routing());
  ASSERT_FALSE(traffic.ok());
  EXPECT_NE(traffic.status().message().find("routing of rank 2: topk_idx[0, 1] = 8"),
            std::string::npos)
      << traffic.status().message();
}

}  // namespace
}  // namespace fusco::plan
