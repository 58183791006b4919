// Dispatch and combine through the public API, ranks as threads, checked bit for bit against
// the reference oracle.

#include <gtest/gtest.h>

#include <random>

#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

constexpr DType kAllDtypes[] = {DType::kFloat32,    DType::kFloat16,    DType::kBFloat16,
                                DType::kFloat8E4M3, DType::kFloat8E5M2, DType::kInt8,
                                DType::kInt32,      DType::kInt64,      DType::kFloat64};

TEST(DispatchCombine, RandomizedCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    const Case c = random_case(seed);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(matches_reference(c));
  }
}

TEST(DispatchCombine, EveryDtype_EveryDedup_MatchesReference) {
  for (DType dtype : kAllDtypes) {
    for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
      Case c;
      c.world = 6;
      c.ranks_per_node = 4;  // nodes of 4 and 2: rpn does not divide the world
      c.experts = 12;
      c.dtype = dtype;
      c.dedup = dedup;
      c.hidden = 7;
      c.seed = 100 + static_cast<uint64_t>(dtype);
      EXPECT_TRUE(matches_reference(c));
    }
  }
}

TEST(DispatchCombine, WithoutDirectAccess_EveryDedupAndDtypeMatchesReference) {
  // Ranks that cannot reach each other's memory (as processes): every row to another rank is
  // staged, node dedup forms its node partials at the source; the bits are the same.
  for (DType dtype : {DType::kBFloat16, DType::kFloat32, DType::kInt8}) {
    for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
      Case c;
      c.world = 7;
      c.ranks_per_node = 3;
      c.experts = 14;
      c.topk = 5;
      c.dtype = dtype;
      c.dedup = dedup;
      c.direct_access = false;
      c.seed = 300 + static_cast<uint64_t>(dedup);
      EXPECT_TRUE(matches_reference(c));
    }
  }
}

TEST(DispatchCombine, WithoutDirectAccess_OnlyOwnRowsAreStoredDirectly) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 4;  // one node: with direct access nothing would be staged
  c.experts = 8;
  c.masked = 0.0;
  c.masked_token = 0.0;
  c.direct_access = false;
  const Outcome got = run_case(c);
  for (int r = 0; r < c.world; ++r) {
    const PlanStats& s = got.stats[static_cast<size_t>(r)];
    EXPECT_EQ(s.inter_node_rows, 0);
    EXPECT_EQ(s.wire_rows_per_destination[static_cast<size_t>(r)],
              s.rows_per_destination[static_cast<size_t>(r)]);
  }
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, DeepSeekShape_Hidden7168Top8Of256Experts) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 4;
  c.topk = 8;
  c.experts = 256;
  c.hidden = 7168;
  c.tokens_each = 6;
  c.chunk_bytes = 1 << 16;
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, OneExpertInTheWholeGroup) {
  Case c;
  c.world = 3;
  c.ranks_per_node = 2;
  c.topk = 2;
  c.experts = 1;
  c.owners = {2};  // the only expert lives on rank 2, other node
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, FiveHundredTwelveExperts) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 4;
  c.topk = 8;
  c.experts = 512;
  c.hidden = 128;
  c.tokens_each = 64;
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, MoreThan64Nodes_GroupsPartialsInNodeOrder) {
  // Past 64 nodes a token's nodes no longer fit the planner's bit mask.
  Case c;
  c.world = 70;
  c.ranks_per_node = 1;
  c.topk = 6;
  c.experts = 70;
  c.hidden = 5;
  c.dtype = DType::kFloat16;
  c.tokens_each = 6;
  EXPECT_TRUE(matches_reference(c));
  c.ranks_per_node = 2;  // 35 nodes: the bit-mask path, same routing
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, WorldSizeOne_EverythingStaysLocal) {
  Case c;
  c.world = 1;
  c.ranks_per_node = 1;
  c.experts = 5;
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, OddWorldSizes_WithEveryRanksPerNode) {
  for (int world : {3, 5, 7, 9}) {
    for (int rpn = 1; rpn <= world; rpn += 2) {
      Case c;
      c.world = world;
      c.ranks_per_node = rpn;
      c.experts = world * 2;
      c.seed = static_cast<uint64_t>(world * 10 + rpn);
      EXPECT_TRUE(matches_reference(c));
    }
  }
}

TEST(DispatchCombine, AllSlotsMasked_NothingMovesAndOutputIsZero) {
  Case c;
  c.masked = 1.0;
  for (Dedup dedup : {Dedup::kNone, Dedup::kNode}) {
    c.dedup = dedup;
    const Outcome got = run_case(c);
    for (int r = 0; r < c.world; ++r) {
      EXPECT_TRUE(got.recv[static_cast<size_t>(r)].empty());
      for (std::byte b : got.out[static_cast<size_t>(r)]) {
        ASSERT_EQ(b, std::byte{0});
      }
    }
    EXPECT_TRUE(matches_reference(c));
  }
}

TEST(DispatchCombine, FullyMaskedTokens_GetZeroRows) {
  Case c;
  c.masked = 0.0;
  c.masked_token = 0.5;
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, DuplicateExpertsInOneToken_BecomeTwoRows) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.topk = 3;
  c.experts = 8;
  c.tokens = {2, 1, 0, 1};
  // Token 0 of rank 0 names expert 6 (rank 3, other node) twice and expert 1 once.
  c.ids = {{6, 6, 1, 7, -1, 7}, {2, 2, 2}, {}, {0, 5, 0}};
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    c.dedup = dedup;
    const Outcome got = run_case(c);
    EXPECT_EQ(got.tokens_per_expert[3], (std::vector<int64_t>{2, 2}));
    EXPECT_TRUE(matches_reference(c));
  }
}

TEST(DispatchCombine, ZeroTokensOnSomeRanks) {
  Case c;
  c.world = 5;
  c.ranks_per_node = 2;
  c.experts = 10;
  c.tokens = {0, 17, 0, 0, 9};
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, OneHotExpert_ReceivesEveryToken) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.topk = 1;
  c.experts = 8;
  c.tokens_each = 30;
  c.ids.assign(4, std::vector<int64_t>(30, 5));  // expert 5 lives on rank 2
  const Outcome got = run_case(c);
  EXPECT_EQ(got.tokens_per_expert[2], (std::vector<int64_t>{0, 120}));  // slot 1 of rank 2
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, UnevenExplicitMap_RankWithoutExperts) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 3;
  c.experts = 7;
  c.owners = {0, 0, 0, 3, 3, 1, 0};  // rank 2 owns nothing
  const Outcome got = run_case(c);
  EXPECT_TRUE(got.tokens_per_expert[2].empty());
  EXPECT_TRUE(matches_reference(c));
}

TEST(DispatchCombine, HiddenZeroOneAndNonMultiplesOf16) {
  for (int64_t hidden : {0, 1, 7, 17, 129}) {
    Case c;
    c.hidden = hidden;
    c.dtype = DType::kFloat16;
    EXPECT_TRUE(matches_reference(c));
  }
}

TEST(DispatchCombine, ResultsDoNotDependOnChunkSize) {
  Case c;
  c.world = 6;
  c.ranks_per_node = 2;
  c.experts = 12;
  c.chunk_bytes = 1;
  const Outcome small = run_case(c);
  c.chunk_bytes = 1 << 20;
  const Outcome large = run_case(c);
  EXPECT_EQ(small.recv, large.recv);
  EXPECT_EQ(small.out, large.out);
}

TEST(DispatchCombine, RepeatedRuns_AreBitIdentical) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 4;
  c.experts = 32;
  c.topk = 6;
  const Outcome first = run_case(c);
  for (int run = 0; run < 3; ++run) {
    const Outcome again = run_case(c);
    EXPECT_EQ(first.recv, again.recv);
    EXPECT_EQ(first.out, again.out);
  }
}

TEST(DispatchCombine, DedupNoneAndRankAgreeExactly_NodeWithinPartialRounding) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 2;
  c.experts = 16;
  c.dtype = DType::kFloat32;  // partials are not rounded in fp32: all three agree exactly
  c.dedup = Dedup::kNone;
  const Outcome none = run_case(c);
  c.dedup = Dedup::kRank;
  const Outcome rank = run_case(c);
  EXPECT_EQ(none.recv, rank.recv);
  EXPECT_EQ(none.out, rank.out);
  c.dedup = Dedup::kNode;
  const Outcome node = run_case(c);
  EXPECT_EQ(none.recv, node.recv);
  for (size_t r = 0; r < none.out.size(); ++r) {
    ASSERT_EQ(none.out[r].size(), node.out[r].size());
    const auto* a = reinterpret_cast<const float*>(none.out[r].data());
    const auto* b = reinterpret_cast<const float*>(node.out[r].data());
    for (size_t i = 0; i < none.out[r].size() / 4; ++i) {
      ASSERT_NEAR(a[i], b[i], 1e-5f) << "rank " << r << " element " << i;
    }
  }
}

}  // namespace
}  // namespace fusco::testing
