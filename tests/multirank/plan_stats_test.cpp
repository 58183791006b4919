// What plans promise about traffic, and combine(dispatch(x)) with identity experts.

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "multirank/harness.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {
namespace {

struct Routed {
  int world;
  Topology topo;
  int topk;
  int64_t experts;
  std::vector<std::vector<int64_t>> ids;
  int64_t tokens(int r) const {
    return static_cast<int64_t>(ids[static_cast<size_t>(r)].size()) / topk;
  }
};

Routed make_routing(uint64_t seed) {
  Routed routed{8, Topology::nodes_of(8, 3), 6, 24, {}};
  for (int r = 0; r < routed.world; ++r) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(r));
    routed.ids.push_back(random_topk(30 + r, routed.topk, routed.experts, 0.1, 0.05, rng));
  }
  return routed;
}

std::vector<PlanStats> plan_all(const Routed& routed, Dedup dedup,
                                RelayPolicy relay = RelayPolicy::kRailAligned) {
  auto comms = Communicator::create_local(routed.world, routed.topo);
  std::vector<PlanStats> stats(static_cast<size_t>(routed.world));
  const auto statuses = run_ranks(routed.world, [&](int r) {
    PlanOptions options;
    options.dedup = dedup;
    options.relay = relay;
    auto ids = routed.ids[static_cast<size_t>(r)];
    Result<Plan> plan = comms.value()[static_cast<size_t>(r)].plan(
        TensorView::host(ids.data(), DType::kInt64, {routed.tokens(r), routed.topk}),
        routed.experts, ExpertMap(), options);
    if (plan.ok()) stats[static_cast<size_t>(r)] = plan.value().stats();
    return plan.status();
  });
  EXPECT_TRUE(first_error(statuses).ok());
  return stats;
}

// Inter-node rows equal the theoretical minimum: per token, its distinct remote nodes.
void expect_minimum_inter_node_rows(const Routed& routed, const std::vector<PlanStats>& stats);

TEST(PlanStats, NodeDedupSendsEachTokenOncePerRemoteNode_TheMinimum) {
  const Routed routed = make_routing(5);
  for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
    SCOPED_TRACE(relay_policy_name(relay));
    expect_minimum_inter_node_rows(routed, plan_all(routed, Dedup::kNode, relay));
  }
}

void expect_minimum_inter_node_rows(const Routed& routed, const std::vector<PlanStats>& stats) {
  const int64_t per_rank = routed.experts / routed.world;
  for (int r = 0; r < routed.world; ++r) {
    int64_t minimum = 0;
    int64_t remote_pairs = 0;
    for (int64_t t = 0; t < routed.tokens(r); ++t) {
      std::set<int> nodes;
      for (int j = 0; j < routed.topk; ++j) {
        const int64_t e =
            routed.ids[static_cast<size_t>(r)][static_cast<size_t>(t * routed.topk + j)];
        const int node = e < 0 ? -1 : routed.topo.node_of(static_cast<int>(e / per_rank));
        if (e >= 0 && node != routed.topo.node_of(r)) {
          nodes.insert(node);
          ++remote_pairs;
        }
      }
      minimum += static_cast<int64_t>(nodes.size());
    }
    EXPECT_EQ(stats[static_cast<size_t>(r)].inter_node_rows, minimum) << "rank " << r;
    EXPECT_EQ(stats[static_cast<size_t>(r)].inter_node_rows_without_dedup, remote_pairs);
  }
}

TEST(PlanStats, RankDedupSendsEachTokenOncePerRemoteRank) {
  const Routed routed = make_routing(6);
  const auto none = plan_all(routed, Dedup::kNone);
  const auto rank = plan_all(routed, Dedup::kRank);
  const auto node = plan_all(routed, Dedup::kNode);
  const int64_t per_rank = routed.experts / routed.world;
  for (int r = 0; r < routed.world; ++r) {
    int64_t expected = 0;
    for (int64_t t = 0; t < routed.tokens(r); ++t) {
      std::set<int> ranks;
      for (int j = 0; j < routed.topk; ++j) {
        const int64_t e =
            routed.ids[static_cast<size_t>(r)][static_cast<size_t>(t * routed.topk + j)];
        const int owner = static_cast<int>(e / per_rank);
        if (e >= 0 && !routed.topo.same_node(owner, r)) ranks.insert(owner);
      }
      expected += static_cast<int64_t>(ranks.size());
    }
    const auto rr = static_cast<size_t>(r);
    EXPECT_EQ(rank[rr].inter_node_rows, expected);
    EXPECT_EQ(none[rr].inter_node_rows, none[rr].inter_node_rows_without_dedup);
    EXPECT_LE(node[rr].inter_node_rows, rank[rr].inter_node_rows);
    EXPECT_GE(node[rr].dedup_ratio(), 1.0);
    EXPECT_EQ(none[rr].rows_per_destination, node[rr].rows_per_destination);
  }
}

TEST(PlanStats, ReceivedRowsSumToSentRows) {
  const Routed routed = make_routing(7);
  const auto stats = plan_all(routed, Dedup::kNode);
  int64_t sent = 0;
  int64_t received = 0;
  for (const PlanStats& s : stats) {
    sent += s.logical_rows;
    received += s.received_rows;
  }
  EXPECT_EQ(sent, received);
}

TEST(IdentityExperts, CombineOfDispatchIsXTimesSumOfWeights) {
  Case c;
  c.world = 6;
  c.ranks_per_node = 4;
  c.experts = 12;
  c.topk = 5;
  c.dtype = DType::kFloat32;
  c.hidden = 9;
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    c.dedup = dedup;
    // run_case combines random y; here y must be the dispatched rows themselves.
    auto comms = Communicator::create_local(c.world, Topology::nodes_of(c.world, c.ranks_per_node));
    const auto statuses = run_ranks(c.world, [&](int r) -> Status {
      std::mt19937_64 rng(static_cast<uint64_t>(r) + 17);
      const int64_t tokens = 20;
      auto ids = random_topk(tokens, c.topk, c.experts, 0.2, 0.1, rng);
      PlanOptions options;
      options.dedup = dedup;
      options.chunk_bytes = 64;
      Communicator& comm = comms.value()[static_cast<size_t>(r)];
      Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt64, {tokens, c.topk}),
                                    c.experts, ExpertMap(), options);
      FUSCO_RETURN_IF_ERROR(plan.status());
      std::vector<float> x(static_cast<size_t>(tokens * c.hidden));
      std::vector<float> w(static_cast<size_t>(tokens * c.topk));
      std::uniform_real_distribution<float> value(-1, 1);
      for (float& v : x) v = value(rng);
      for (float& v : w) v = value(rng);
      const int64_t rows = plan.value().num_recv_rows();
      std::vector<float> recv(static_cast<size_t>(rows * c.hidden));
      std::vector<float> out(x.size());
      FUSCO_RETURN_IF_ERROR(comm.dispatch(
          plan.value(), TensorView::host(x.data(), DType::kFloat32, {tokens, c.hidden}),
          TensorView::host(recv.data(), DType::kFloat32, {rows, c.hidden})));
      FUSCO_RETURN_IF_ERROR(comm.combine(
          plan.value(), TensorView::host(recv.data(), DType::kFloat32, {rows, c.hidden}),
          TensorView::host(w.data(), DType::kFloat32, {tokens, c.topk}),
          TensorView::host(out.data(), DType::kFloat32, {tokens, c.hidden})));
      for (int64_t t = 0; t < tokens; ++t) {
        float sum = 0;
        for (int j = 0; j < c.topk; ++j) {
          sum += ids[static_cast<size_t>(t * c.topk + j)] >= 0
                     ? w[static_cast<size_t>(t * c.topk + j)]
                     : 0.0f;
        }
        for (int64_t h = 0; h < c.hidden; ++h) {
          const float want = x[static_cast<size_t>(t * c.hidden + h)] * sum;
          const float got = out[static_cast<size_t>(t * c.hidden + h)];
          if (std::fabs(got - want) > 1e-5f) {
            return Status(StatusCode::kInternal, "token " + std::to_string(t) + ": " +
                                                     std::to_string(got) +
                                                     " != " + std::to_string(want));
          }
        }
      }
      return Status();
    });
    for (const Status& s : statuses) {
      EXPECT_TRUE(s.ok()) << dedup_name(dedup) << ": " << s.to_string();
    }
  }
}

}  // namespace
}  // namespace fusco::testing
