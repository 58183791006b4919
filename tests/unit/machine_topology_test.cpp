// A process group's topology against the machines its ranks run on (issue 18, class 18):
// one node per machine by default, and no logical node across two machines.

#include "bootstrap/machine_topology.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fusco::bootstrap {
namespace {

std::vector<std::string> machines_of(const std::string& letters) {
  std::vector<std::string> out;
  for (const char c : letters) out.push_back(std::string("host-") + c + "/boot-" + c);
  return out;
}

TEST(MachineTopology, ByMachine_TakesOneNodePerMachine) {
  const Result<Topology> two = topology_for_machines(Topology::by_machine(4), machines_of("aabb"));
  ASSERT_TRUE(two.ok()) << two.status().to_string();
  EXPECT_EQ(two.value().ranks_per_node, 2);
  EXPECT_EQ(two.value().num_nodes(), 2);
  const Result<Topology> smaller_last =
      topology_for_machines(Topology::by_machine(7), machines_of("aaabbbc"));
  ASSERT_TRUE(smaller_last.ok()) << smaller_last.status().to_string();
  EXPECT_EQ(smaller_last.value().num_nodes(), 3);
  EXPECT_EQ(smaller_last.value().node_size(2), 1);
}

TEST(MachineTopology, ByMachine_OnOneMachineOrOneRank_IsOneNode) {
  const Result<Topology> one = topology_for_machines(Topology::by_machine(3), machines_of("aaa"));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one.value().num_nodes(), 1);
  EXPECT_EQ(one.value().node_width(), 3);
  const Result<Topology> single = topology_for_machines(Topology::by_machine(1), machines_of("a"));
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single.value().num_nodes(), 1);
  // Transports of one machine report empty machine ids.
  const Result<Topology> unnamed =
      topology_for_machines(Topology::by_machine(5), std::vector<std::string>(5));
  ASSERT_TRUE(unnamed.ok());
  EXPECT_EQ(unnamed.value().num_nodes(), 1);
}

TEST(MachineTopology, ByMachine_RefusesMachinesItCannotExpress_NamingTheRank) {
  // --map-by node interleaves machines; unequal runs; one machine holding two runs. (A last
  // machine holding fewer, "aaab", is a smaller last node.)
  for (const auto& [letters, rank] : std::vector<std::pair<std::string, int>>{
           {"abab", 2}, {"aabbb", 4}, {"abbb", 2}, {"aabbaa", 4}, {"abca", 3}}) {
    const Result<Topology> got = topology_for_machines(
        Topology::by_machine(static_cast<int>(letters.size())), machines_of(letters));
    ASSERT_FALSE(got.ok()) << letters;
    EXPECT_EQ(got.status().code(), StatusCode::kUnsupported) << letters;
    const std::string named = "rank " + std::to_string(rank) + " on 'host-";
    EXPECT_NE(got.status().message().find(named), std::string::npos)
        << letters << ": " << got.status().message();
    EXPECT_NE(got.status().message().find("--map-by slot"), std::string::npos);
  }
}

TEST(MachineTopology, ExplicitNodes_MayDivideAMachineButNotSpanTwo) {
  const Result<Topology> emulated =
      topology_for_machines(Topology::nodes_of(4, 1), machines_of("aabb"));
  ASSERT_TRUE(emulated.ok());
  EXPECT_EQ(emulated.value().ranks_per_node, 1);
  for (const int rpn : {0, 3, 4}) {
    const Result<Topology> got =
        topology_for_machines(Topology::nodes_of(4, rpn), machines_of("aabb"));
    ASSERT_FALSE(got.ok()) << rpn;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    const std::string why = got.status().message();
    EXPECT_NE(why.find("logical node 0"), std::string::npos) << why;
    EXPECT_NE(why.find("'host-a'"), std::string::npos) << why;
    EXPECT_NE(why.find("rank 2 on 'host-b'"), std::string::npos) << why;
  }
  // The last, smaller node is checked too: ranks 3 (b) and 4 (c) share node 1.
  const Result<Topology> last =
      topology_for_machines(Topology::nodes_of(5, 3), machines_of("aaabc"));
  ASSERT_FALSE(last.ok());
  EXPECT_NE(last.status().message().find("logical node 1"), std::string::npos);
}

TEST(MachineTopology, BadRanksPerNode_IsRefusedBeforeTheMachinesAreRead) {
  const Result<Topology> got = topology_for_machines(Topology{4, -2}, machines_of("aabb"));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("-2"), std::string::npos);
}

}  // namespace
}  // namespace fusco::bootstrap
