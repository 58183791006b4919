// The cluster description, the alpha-beta cost of a group's traffic, and redundant placement.

#include "model/cost_model.hpp"

#include <gtest/gtest.h>

#include "model/redundant_placement.hpp"

namespace fusco::plan {
namespace {

TEST(ClusterSpec, ParsesKeysOnTopOfABaseAndRoundTrips) {
  Result<ClusterSpec> spec = parse_cluster_spec(
      "nodes=4 ranks_per_node=2\n# comment, nodes=9\nnic_gbits_per_s=200,nics_per_node=1",
      ClusterSpec::fusco_testbed());
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  EXPECT_EQ(spec.value().nodes, 4);
  EXPECT_EQ(spec.value().ranks_per_node, 2);
  EXPECT_EQ(spec.value().nics_per_node, 1);
  EXPECT_EQ(spec.value().nic_gbits_per_s, 200);
  EXPECT_EQ(spec.value().nvlink_gbytes_per_s, 480);  // from the base
  Result<ClusterSpec> again = parse_cluster_spec(spec.value().to_string(), ClusterSpec());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().to_string(), spec.value().to_string());
  EXPECT_EQ(spec.value().topology().world_size, 8);
}

TEST(ClusterSpec, ErrorsNameTheKeyTheValueAndTheRange) {
  auto message = [](const char* text) {
    return parse_cluster_spec(text, ClusterSpec()).status().message();
  };
  EXPECT_EQ(message("nodes=0"), "cluster spec: nodes=0 is not an integer in [1, 65536]");
  EXPECT_EQ(message("nic_gbits_per_s=-4"),
            "cluster spec: nic_gbits_per_s=-4 is not a number in (0, 1e9]");
  EXPECT_EQ(message("nodes"), "cluster spec: 'nodes' is not key=value");
  EXPECT_NE(message("gpus=8").find("unknown key 'gpus'"), std::string::npos);
  EXPECT_EQ(message("nodes=1024,ranks_per_node=128"),
            "cluster spec: nodes * ranks_per_node = 131072 ranks; at most 65536 are supported");
}

TEST(CostModel, BusiestLinkAndTimeFollowTheRows) {
  // 2 nodes x 2 ranks, 2 NICs per node (one per rank). Rank 0 sends 10 rows to rank 2 (other
  // node, NIC 0 -> NIC 0) and 4 to rank 1 (NVLink); rank 3 keeps 7.
  ClusterSpec cluster;
  cluster.nodes = 2;
  cluster.ranks_per_node = 2;
  cluster.nics_per_node = 2;
  cluster.nic_gbits_per_s = 8;      // 1 GB/s
  cluster.nvlink_gbytes_per_s = 2;  // 2 GB/s
  cluster.network_latency_us = 10;
  cluster.nvlink_latency_us = 1;
  GroupTraffic traffic;
  traffic.world_size = 4;
  traffic.rows.assign(16, 0);
  traffic.rows[0 * 4 + 2] = 10;
  traffic.rows[0 * 4 + 1] = 4;
  traffic.rows[3 * 4 + 3] = 7;
  Result<PlanCost> cost = estimate_cost(traffic, cluster, 1000000);  // 1 MB rows
  ASSERT_TRUE(cost.ok());
  EXPECT_EQ(cost.value().network_bytes, 10000000);
  EXPECT_EQ(cost.value().nvlink_bytes, 4000000);
  EXPECT_EQ(cost.value().local_bytes, 7000000);
  EXPECT_EQ(cost.value().busiest.link, "nic out node 0 nic 0");
  EXPECT_DOUBLE_EQ(cost.value().busiest.seconds, 0.01);
  EXPECT_DOUBLE_EQ(cost.value().busiest_nvlink.seconds, 0.002);
  EXPECT_DOUBLE_EQ(cost.value().seconds, 0.01 + 11e-6);
  traffic.world_size = 2;
  EXPECT_FALSE(estimate_cost(traffic, cluster, 1).ok());
}

TEST(RedundantPlacement, CopiesGoToTheHottestExpertsOnTheLeastLoadedRanks) {
  // 4 experts on 2 ranks; expert 1 is hot. Rank 0 holds {0, 1} (load 110), rank 1 {2, 3}
  // (load 20): the first copy of expert 1 goes to rank 1; then expert 1 has 50 per copy and
  // stays the hottest, but both ranks hold it, so the next copy goes to expert 2 (15) on
  // rank 0 (60 vs 70).
  Result<std::vector<std::vector<int32_t>>> placed =
      place_redundant_experts({10, 100, 15, 5}, 2, 2);
  ASSERT_TRUE(placed.ok()) << placed.status().to_string();
  EXPECT_EQ(placed.value(), (std::vector<std::vector<int32_t>>{{0}, {0, 1}, {1, 0}, {1}}));
  EXPECT_FALSE(place_redundant_experts({1, 2, 3}, 2, 1).ok());  // E not a multiple of W
  EXPECT_EQ(place_redundant_experts({1, 2}, 2, 3).status().message(),
            "redundant copies = 3 is outside [0, 2] (E * (W - 1))");
}

}  // namespace
}  // namespace fusco::plan
