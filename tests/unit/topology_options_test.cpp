// Topology arithmetic (nodes, uneven last node, rail relays) and options with the environment.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "core/env.hpp"
#include "fusco/options.hpp"
#include "fusco/topology.hpp"
#include "testing/routing.hpp"

namespace fusco {
namespace {

TEST(Topology, RanksPerNodeThatDoesNotDivideLeavesASmallerLastNode) {
  const Topology topo = Topology::nodes_of(7, 3);
  EXPECT_EQ(topo.num_nodes(), 3);
  EXPECT_EQ(topo.node_size(2), 1);
  EXPECT_EQ(topo.node_of(6), 2);
  EXPECT_EQ(topo.local_index(4), 1);
  EXPECT_TRUE(topo.same_node(3, 5));
  EXPECT_FALSE(topo.same_node(2, 3));
}

TEST(Topology, RailRelayKeepsTheLocalIndexOrWrapsOnASmallNode) {
  const Topology topo = Topology::nodes_of(7, 3);
  EXPECT_EQ(topo.rail_relay(1, 2), 5);  // local index 2 on node 1
  EXPECT_EQ(topo.rail_relay(2, 2), 6);  // node 2 has one rank
  EXPECT_EQ(topo.rail_relay(0, 4), 1);
}

TEST(Topology, ZeroRanksPerNodeMeansOneNode) {
  const Topology topo{5, 0};
  EXPECT_EQ(topo.num_nodes(), 1);
  EXPECT_EQ(topo.node_size(0), 5);
  EXPECT_FALSE((Topology{0, 1}.validate().ok()));
  EXPECT_FALSE((Topology{2, -2}.validate().ok()));
  EXPECT_TRUE(Topology::by_machine(2).validate().ok());  // resolved by a process group
  EXPECT_EQ(Topology::by_machine(5).num_nodes(), 1);
}

TEST(PlanOptions, DefaultsAreDocumentedValues) {
  const PlanOptions options;
  EXPECT_EQ(options.dedup, Dedup::kNode);
  EXPECT_EQ(options.chunk_bytes, 1 << 20);
  EXPECT_EQ(options.timeout_ms, 60000);
  EXPECT_EQ(options.process_relays, ProcessRelays::kAuto);
  EXPECT_TRUE(options.validate().ok());
}

TEST(PlanOptions, EnvironmentOverridesEachField) {
  setenv("FUSCO_DEDUP", "rank", 1);
  setenv("FUSCO_CHUNK_BYTES", "65536", 1);
  setenv("FUSCO_TIMEOUT_MS", "1500", 1);
  setenv("FUSCO_RELAY", "rail", 1);
  setenv("FUSCO_PROCESS_RELAYS", "on", 1);
  Result<PlanOptions> options = PlanOptions::from_env();
  unsetenv("FUSCO_PROCESS_RELAYS");
  unsetenv("FUSCO_DEDUP");
  unsetenv("FUSCO_CHUNK_BYTES");
  unsetenv("FUSCO_TIMEOUT_MS");
  unsetenv("FUSCO_RELAY");
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options.value().dedup, Dedup::kRank);
  EXPECT_EQ(options.value().chunk_bytes, 65536);
  EXPECT_EQ(options.value().timeout_ms, 1500);
  EXPECT_EQ(options.value().process_relays, ProcessRelays::kOn);
}

TEST(PlanOptions, BadEnvironmentValuesNameVariableValueAndRange) {
  setenv("FUSCO_TIMEOUT_MS", "0", 1);
  Result<PlanOptions> options = PlanOptions::from_env();
  unsetenv("FUSCO_TIMEOUT_MS");
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().message(),
            "FUSCO_TIMEOUT_MS=0 is out of range (expected an integer in [1, 86400000])");
  setenv("FUSCO_DEDUP", "nodes", 1);
  options = PlanOptions::from_env();
  unsetenv("FUSCO_DEDUP");
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.status().message().find("FUSCO_DEDUP: dedup 'nodes' is not known"),
            std::string::npos);
  setenv("FUSCO_PROCESS_RELAYS", "maybe", 1);
  options = PlanOptions::from_env();
  unsetenv("FUSCO_PROCESS_RELAYS");
  ASSERT_FALSE(options.ok());
  EXPECT_NE(
      options.status().message().find(
          "FUSCO_PROCESS_RELAYS: process relays 'maybe' is not known; expected auto, on or off"),
      std::string::npos)
      << options.status().message();
}

TEST(Environment, TransportAndGpuVariables_ParseTheirNamesAndRejectOthers) {
  setenv("FUSCO_UCX_PROTOCOL", "put", 1);
  EXPECT_EQ(core::ucx_protocol_from_env().value(), 1);
  setenv("FUSCO_UCX_PROTOCOL", "rdma", 1);
  const Status protocol = core::ucx_protocol_from_env().status();
  unsetenv("FUSCO_UCX_PROTOCOL");
  EXPECT_EQ(core::ucx_protocol_from_env().value(), 0);
  EXPECT_NE(protocol.message().find("FUSCO_UCX_PROTOCOL = 'rdma' is not one of auto, put, message"),
            std::string::npos)
      << protocol.message();
  setenv("FUSCO_NCCL_WINDOW_BYTES", "100", 1);
  const Status window = core::nccl_window_bytes_from_env(1 << 30).status();
  unsetenv("FUSCO_NCCL_WINDOW_BYTES");
  EXPECT_NE(window.message().find("FUSCO_NCCL_WINDOW_BYTES"), std::string::npos);
  setenv("FUSCO_NCCL_CHECK_CALLS", "0", 1);
  EXPECT_FALSE(core::nccl_check_calls_from_env(true).value());
  unsetenv("FUSCO_NCCL_CHECK_CALLS");
  EXPECT_TRUE(core::nccl_check_calls_from_env(true).value());
}

TEST(Routing, ParsesEveryScenarioAndRejectsOthers) {
  EXPECT_EQ(testing::parse_routing("uniform").value().kind, testing::RoutingKind::kUniform);
  EXPECT_EQ(testing::parse_routing("zipf:1.2").value().param, 1.2);
  EXPECT_EQ(testing::parse_routing("hot:0.5").value().kind, testing::RoutingKind::kHot);
  EXPECT_EQ(testing::parse_routing("node-confined").value().kind,
            testing::RoutingKind::kNodeConfined);
  EXPECT_FALSE(testing::parse_routing("zipf:-1").ok());
  EXPECT_FALSE(testing::parse_routing("hot:2").ok());
  EXPECT_FALSE(testing::parse_routing("random").ok());
}

TEST(Routing, TokensPickDistinctExpertsAndNodeConfinedStaysHome) {
  const Topology topo = Topology::nodes_of(8, 4);
  const auto ids = testing::generate_routing(testing::parse_routing("node-confined").value(), 50, 8,
                                             64, 5, topo, 3);
  for (int t = 0; t < 50; ++t) {
    for (int j = 0; j < 8; ++j) {
      const int32_t e = ids[static_cast<size_t>(t * 8 + j)];
      EXPECT_EQ(topo.node_of(e / 8), 1);  // rank 5 lives on node 1
      for (int i = 0; i < j; ++i) {
        EXPECT_NE(ids[static_cast<size_t>(t * 8 + i)], e);
      }
    }
  }
  const auto hot =
      testing::generate_routing(testing::parse_routing("hot:1").value(), 20, 4, 64, 0, topo, 3);
  for (int t = 0; t < 20; ++t) {
    EXPECT_EQ(hot[static_cast<size_t>(t * 4)], 0);
  }
}

// Any exponent ends (issue 18, class 9): under an extreme skew tokens still get k distinct
// experts, the most popular ones first, instead of drawing the same expert forever.
TEST(Routing, ExtremeZipfExponents_StillGiveEachTokenDistinctExperts) {
  const Topology topo = Topology::nodes_of(8, 4);
  for (const char* spec : {"zipf:50", "zipf:1e300", "zipf:inf"}) {
    const auto ids =
        testing::generate_routing(testing::parse_routing(spec).value(), 30, 8, 64, 2, topo, 5);
    for (int t = 0; t < 30; ++t) {
      for (int j = 0; j < 8; ++j) {
        const int32_t e = ids[static_cast<size_t>(t * 8 + j)];
        EXPECT_TRUE(e >= 0 && e < 64) << spec << ": token " << t << " slot " << j << " = " << e;
        for (int i = 0; i < j; ++i) {
          EXPECT_NE(ids[static_cast<size_t>(t * 8 + i)], e) << spec << ": token " << t;
        }
      }
    }
    // Every token holds the same 8 most popular experts.
    EXPECT_TRUE(std::is_permutation(ids.begin(), ids.begin() + 8, ids.end() - 8)) << spec;
  }
}

}  // namespace
}  // namespace fusco
