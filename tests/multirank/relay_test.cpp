// Relay choice under node dedup: the rail-aligned and the balanced policies.

#include <gtest/gtest.h>

#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

// Two nodes of 4; only rank 0 has tokens, and every one goes to expert 4 (rank 4, node 1).
Case one_heavy_sender(RelayPolicy relay) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 4;
  c.topk = 2;
  c.experts = 8;
  c.tokens = {40, 0, 0, 0, 0, 0, 0, 0};
  c.ids.assign(8, {});
  for (int64_t t = 0; t < 40; ++t) {
    c.ids[0].push_back(4);
    c.ids[0].push_back(t % 3 == 0 ? 6 : -1);  // a third of the tokens also go to rank 6
  }
  c.relay = relay;
  return c;
}

TEST(Relay, Rail_OneSendersInterNodeRowsAllEnterThroughOneRank) {
  const Outcome got = run_case(one_heavy_sender(RelayPolicy::kRailAligned));
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.stats[0].wire_rows_per_destination,
            (std::vector<int64_t>{0, 0, 0, 0, 40, 0, 0, 0}));
  EXPECT_EQ(got.stats[4].relay_forwarded_rows, 14);  // the tokens that also go to rank 6
}

TEST(Relay, Balanced_SpreadsOneSendersRowsOverTheDestinationNode) {
  const Case c = one_heavy_sender(RelayPolicy::kBalanced);
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  // Still one copy per token: 40 inter-node rows, now 10 through each rank of node 1.
  EXPECT_EQ(got.stats[0].inter_node_rows, 40);
  EXPECT_EQ(got.stats[0].wire_rows_per_destination,
            (std::vector<int64_t>{0, 0, 0, 0, 10, 10, 10, 10}));
  EXPECT_TRUE(matches_reference(c));
}

TEST(Relay, Balanced_TiesGoToARankTheTokenIsDestinedFor) {
  // 42 tokens, each to ranks 5 and 6. Loads come first, so every 4 tokens take ranks 5, 6
  // (tied at the start of a round, destined), then 4, 7; the last two tokens take 5 and 6.
  Case c = one_heavy_sender(RelayPolicy::kBalanced);
  c.tokens[0] = 42;
  c.ids[0].clear();
  for (int64_t t = 0; t < 42; ++t) {
    c.ids[0].push_back(5);
    c.ids[0].push_back(6);
  }
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.stats[0].wire_rows_per_destination,
            (std::vector<int64_t>{0, 0, 0, 0, 10, 11, 11, 10}));
  // A row relayed by 5 or 6 is forwarded once, by 4 or 7 twice.
  EXPECT_EQ(got.stats[4].relay_forwarded_rows, 20);
  EXPECT_EQ(got.stats[5].relay_forwarded_rows, 11);
  EXPECT_EQ(got.stats[6].relay_forwarded_rows, 11);
  EXPECT_EQ(got.stats[7].relay_forwarded_rows, 20);
  EXPECT_TRUE(matches_reference(c));
}

TEST(Relay, BetweenProcesses_OneCopyPerNodeThenASecondHop) {
  // Ranks that cannot store into each other's memory (processes): the relay parks the rows of
  // its node peers and forwards them in a second hop; combine ships it the weights and the
  // peers' rows back, and it returns one partial per entry. Same traffic over the network as
  // with direct peers, same bits.
  for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
    Case c = one_heavy_sender(relay);
    c.direct_access = false;
    c.process_relays = ProcessRelays::kOn;
    const Outcome got = run_case(c);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(got.stats[0].inter_node_rows, 40);
    EXPECT_EQ(got.stats[0].inter_node_rows_without_dedup, 54);
    if (relay == RelayPolicy::kRailAligned) {
      EXPECT_EQ(got.stats[0].wire_rows_per_destination,
                (std::vector<int64_t>{0, 0, 0, 0, 40, 0, 0, 0}));
      EXPECT_EQ(got.stats[4].relay_forwarded_rows, 14);
    }
    EXPECT_TRUE(matches_reference(c));
    c.extra_cols = 2;                            // a companion tensor takes both hops
    c.combine_buffer_bytes = 16 * c.hidden * 2;  // and combine runs in rounds
    EXPECT_TRUE(matches_reference(c)) << c.describe();
  }
}

TEST(Relay, BetweenProcesses_RandomCasesMatchTheReference) {
  for (uint64_t seed = 400; seed < 430; ++seed) {
    Case c = random_case(seed);
    c.direct_access = false;
    c.dedup = Dedup::kNode;
    c.process_relays = ProcessRelays::kOn;
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(matches_reference(c));
  }
}

TEST(Relay, BetweenProcessesOff_EveryRowGoesToItsRank) {
  Case c = one_heavy_sender(RelayPolicy::kRailAligned);
  c.direct_access = false;
  for (ProcessRelays mode : {ProcessRelays::kOff, ProcessRelays::kAuto}) {  // auto: one machine
    c.process_relays = mode;
    const Outcome got = run_case(c);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(got.stats[0].inter_node_rows, 54);
    EXPECT_EQ(got.stats[0].wire_rows_per_destination,
              (std::vector<int64_t>{0, 0, 0, 0, 40, 0, 14, 0}));
    EXPECT_TRUE(matches_reference(c));
  }
}

TEST(Relay, EveryPolicyMatchesTheReferenceBitForBit) {
  for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
    for (uint64_t seed = 300; seed < 312; ++seed) {
      Case c = random_case(seed);
      c.relay = relay;
      c.dedup = Dedup::kNode;
      SCOPED_TRACE(c.describe());
      ASSERT_TRUE(matches_reference(c));
    }
  }
}

// A token's combine terms are ordered by node through bit masks when there are at most 64
// nodes and 64 slots, and by sorting its slots otherwise: both give the documented order.
TEST(Relay, WideTopkOrMoreThan64Nodes_KeepTheSummationOrderBitForBit) {
  Case wide;  // 72 slots per token over 3 nodes
  wide.world = 6;
  wide.topk = 72;
  wide.experts = 84;
  wide.hidden = 5;
  wide.tokens_each = 7;
  wide.dtype = DType::kFloat32;
  Case many_nodes;  // 66 nodes of one rank
  many_nodes.world = 66;
  many_nodes.ranks_per_node = 1;
  many_nodes.topk = 6;
  many_nodes.experts = 132;
  many_nodes.hidden = 3;
  many_nodes.tokens_each = 5;
  many_nodes.dtype = DType::kFloat32;
  for (Case c : {wide, many_nodes}) {
    for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
      c.relay = relay;
      SCOPED_TRACE(c.describe());
      ASSERT_TRUE(matches_reference_in_every_mode(c));
    }
  }
}

TEST(Relay, BalancedPlansAreDeterministic) {
  Case c = random_case(77);
  c.world = 6;
  c.ranks_per_node = 3;
  c.experts = 12;
  c.owners.clear();
  c.replicas.clear();
  c.tokens.clear();
  c.tokens_each = 30;
  c.relay = RelayPolicy::kBalanced;
  c.dedup = Dedup::kNode;
  const Outcome first = run_case(c);
  const Outcome again = run_case(c);
  for (int r = 0; r < c.world; ++r) {
    EXPECT_EQ(first.stats[static_cast<size_t>(r)].wire_rows_per_destination,
              again.stats[static_cast<size_t>(r)].wire_rows_per_destination);
  }
  EXPECT_EQ(first.recv, again.recv);
  EXPECT_EQ(first.out, again.out);
}

}  // namespace
}  // namespace fusco::testing
