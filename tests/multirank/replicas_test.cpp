// Redundant experts: the planner picks one copy of a replicated expert for every row, and
// results still equal the reference (which makes the same choice one row at a time).

#include <gtest/gtest.h>

#include <algorithm>

#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

// Every token of every rank routes slot 0 to the hot expert 0, slot 1 elsewhere.
Case hot_expert_case(std::vector<std::vector<int32_t>> replicas, int world, int ranks_per_node) {
  Case c;
  c.world = world;
  c.ranks_per_node = ranks_per_node;
  c.topk = 2;
  c.experts = static_cast<int64_t>(replicas.size());
  c.replicas = std::move(replicas);
  c.tokens_each = 20;
  for (int r = 0; r < world; ++r) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < c.tokens_each; ++t) {
      ids.push_back(0);
      ids.push_back(1 + (t + r) % (c.experts - 1));
    }
    c.ids.push_back(ids);
  }
  return c;
}

int64_t max_of(const std::vector<int64_t>& v) { return *std::max_element(v.begin(), v.end()); }

TEST(Replicas, RandomReplicatedMaps_MatchReferenceUnderEveryDedupMode) {
  int checked = 0;
  for (uint64_t seed = 1; checked < 24; ++seed) {
    Case c = random_case(seed);
    if (c.replicas.empty()) continue;
    c.dedup = static_cast<Dedup>(checked % 3);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(matches_reference(c));
    ++checked;
  }
}

TEST(Replicas, HotExpert_CopiesHalveTheMostLoadedRank) {
  // One node of 4; the hot expert 0 has copies on ranks 0 and 1, the others live on 2 and 3.
  // Ranks 0 and 1 keep their 20 hot rows; ranks 2 and 3 split theirs 10/10 over 0 and 1.
  const Case c = hot_expert_case({{0, 1}, {2}, {3}, {2}}, 4, 4);
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  const std::vector<int64_t>& unbalanced = got.stats[0].received_rows_per_rank_unbalanced;
  const std::vector<int64_t>& balanced = got.stats[0].received_rows_per_rank;
  ASSERT_EQ(balanced.size(), 4u);
  EXPECT_EQ(unbalanced[0], 80);  // all 4 x 20 hot rows on the primary
  EXPECT_EQ(unbalanced[1], 0);
  EXPECT_EQ(balanced[0], 40);
  EXPECT_EQ(balanced[1], 40);
  EXPECT_EQ(got.tokens_per_expert[0], (std::vector<int64_t>{40}));
  EXPECT_TRUE(matches_reference(c));
}

TEST(Replicas, HotExpert_RowsFillTheLeastLoadedCopyFirst) {
  // As above, but rank 1 also holds expert 1, which gets 27 of the 80 slot-1 rows: rank 2's
  // hot rows all go to rank 0 (20 < 47), then rank 3's 20 level the two: 7 to rank 0
  // (47 = 47), then 13 split 7/6, the odd row to the lower rank.
  const Case c = hot_expert_case({{0, 1}, {1}, {2}, {3}}, 4, 4);
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  const std::vector<int64_t>& unbalanced = got.stats[0].received_rows_per_rank_unbalanced;
  const std::vector<int64_t>& balanced = got.stats[0].received_rows_per_rank;
  EXPECT_EQ(unbalanced, (std::vector<int64_t>{80, 27, 27, 26}));
  EXPECT_EQ(balanced, (std::vector<int64_t>{54, 53, 27, 26}));
  EXPECT_EQ(max_of(unbalanced) - max_of(balanced), 26);
  EXPECT_TRUE(matches_reference(c));
}

TEST(Replicas, StatsAgreeOnEveryRankAndWithTheReceivedRows) {
  const Case c = hot_expert_case({{2, 0}, {1, 3}, {2}, {3, 1, 0}, {0}}, 5, 2);
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  for (int r = 0; r < c.world; ++r) {
    const PlanStats& stats = got.stats[static_cast<size_t>(r)];
    EXPECT_EQ(stats.received_rows_per_rank, got.stats[0].received_rows_per_rank);
    EXPECT_EQ(stats.received_rows_per_rank_unbalanced,
              got.stats[0].received_rows_per_rank_unbalanced);
    EXPECT_EQ(stats.received_rows_per_rank[static_cast<size_t>(r)], stats.received_rows);
  }
  EXPECT_TRUE(matches_reference(c));
}

TEST(Replicas, CopyOnEveryRank_NoRowOfThatExpertLeavesItsRank) {
  const Case c = hot_expert_case({{3, 2, 1, 0}, {1}, {2}}, 4, 2);
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  for (int r = 0; r < c.world; ++r) {
    // Every rank holds expert 0 in its slot 0 and receives exactly its own 20 hot rows there.
    EXPECT_EQ(got.local_experts[static_cast<size_t>(r)].front(), 0);
    EXPECT_EQ(got.tokens_per_expert[static_cast<size_t>(r)].front(), 20);
  }
  EXPECT_EQ(got.local_experts[1], (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(got.local_experts[3], (std::vector<int64_t>{0}));
  EXPECT_TRUE(matches_reference(c));
}

TEST(Replicas, CopyOnTheSendersNode_IsPreferredOverALessLoadedRemoteCopy) {
  // Two nodes of 2. Expert 0's copies: rank 1 (node 0) and rank 3 (node 1). Rank 0's hot rows
  // stay on its node (rank 1), rank 2's on its own (rank 3), whatever the loads.
  Case c = hot_expert_case({{1, 3}, {1}, {1}, {1}}, 4, 2);  // rank 1 is busy with 1..3 too
  c.dedup = Dedup::kNone;
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.stats[0].rows_per_destination[3], 0);
  EXPECT_EQ(got.stats[2].rows_per_destination[1], 20);  // only its slot-1 rows
  EXPECT_EQ(got.stats[2].rows_per_destination[3], 20);
  EXPECT_TRUE(matches_reference(c));
}

TEST(Replicas, PlansAreDeterministicAcrossRuns) {
  const Case c = hot_expert_case({{1, 2, 3}, {0, 2}, {3}}, 4, 1);
  const Outcome first = run_case(c);
  for (int run = 0; run < 3; ++run) {
    const Outcome again = run_case(c);
    EXPECT_EQ(again.tokens_per_expert, first.tokens_per_expert);
    EXPECT_EQ(again.recv, first.recv);
    EXPECT_EQ(again.out, first.out);
  }
}

TEST(Replicas, SingleCopyLists_BehaveLikeAnOwnerList) {
  Case replicated = hot_expert_case({{2}, {0}, {1}, {3}, {2}}, 4, 2);
  Case owners = replicated;
  owners.replicas.clear();
  owners.owners = {2, 0, 1, 3, 2};
  const Outcome a = run_case(replicated);
  const Outcome b = run_case(owners);
  EXPECT_EQ(a.recv, b.recv);
  EXPECT_EQ(a.out, b.out);
  EXPECT_TRUE(a.stats[0].received_rows_per_rank.empty());  // no expert has two copies
}

}  // namespace
}  // namespace fusco::testing
