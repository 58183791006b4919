// The replica choice on its own: group-wide row counts in, one sender's quotas out.

#include "plan/replica_choice.hpp"

#include <gtest/gtest.h>

namespace fusco::plan {
namespace {

struct Routes {
  core::ResolvedExpertMap map;
  ReplicatedExperts replicated;
};

Routes setup(std::vector<std::vector<int32_t>> replicas, int world) {
  const auto experts = static_cast<int64_t>(replicas.size());
  Result<core::ResolvedExpertMap> map =
      core::resolve_expert_map(ExpertMap::with_replicas(std::move(replicas)), experts, world);
  EXPECT_TRUE(map.ok()) << map.status().to_string();
  return Routes{map.value(), ReplicatedExperts(map.value())};
}

std::vector<int64_t> quotas(const ReplicaChoice& choice, int64_t i) {
  return std::vector<int64_t>(
      choice.quota.begin() + choice.quota_begin[static_cast<size_t>(i)],
      choice.quota.begin() + choice.quota_begin[static_cast<size_t>(i) + 1]);
}

TEST(ReplicaChoice, OnlyExpertsWithSeveralCopiesAreReplicated) {
  const Routes s = setup({{0}, {1, 2}, {2}, {0, 1, 2}}, 3);
  EXPECT_EQ(s.replicated.experts, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(s.replicated.index_of, (std::vector<int64_t>{-1, 0, -1, 1}));
}

TEST(ReplicaChoice, RowsSpreadLikeOneAtATimeToTheLeastLoaded_TiesToTheLowestRank) {
  // One replicated expert on ranks 2 and 0 (list order), one node of 3; sender 1 holds no
  // copy and has 9 rows. Base loads: rank 0 has 3 rows, rank 2 none.
  const Routes s = setup({{2, 0}}, 3);
  ReplicaDemand demand{{3, 0, 0}, {0, 9, 0}};
  const ReplicaChoice choice =
      choose_replicas(s.map, s.replicated, Topology::single_node(3), demand, 1);
  // 3 rows lift rank 2 to rank 0's level, then 6 split 3/3: rank 2 gets 6, rank 0 gets 3.
  EXPECT_EQ(quotas(choice, 0), (std::vector<int64_t>{6, 3}));
  EXPECT_EQ(choice.rows_balanced, (std::vector<int64_t>{6, 0, 6}));
  EXPECT_EQ(choice.rows_unbalanced, (std::vector<int64_t>{3, 0, 9}));
  // An odd row goes to the lower rank.
  demand.rows = {0, 10, 0};
  const ReplicaChoice odd =
      choose_replicas(s.map, s.replicated, Topology::single_node(3), demand, 1);
  EXPECT_EQ(quotas(odd, 0), (std::vector<int64_t>{6, 4}));
}

TEST(ReplicaChoice, OwnCopyFirst_ThenNodeCopies_ThenAllCopies) {
  // Nodes {0, 1} and {2, 3}. Expert 0's copies: ranks 1 and 3.
  const Routes s = setup({{1, 3}}, 4);
  const Topology topo = Topology::nodes_of(4, 2);
  const ReplicaDemand demand{{0, 100, 0, 0}, {5, 5, 5, 5}};
  // Rank 1 keeps its own rows although it is far busier; rank 0 uses its node's copy.
  EXPECT_EQ(quotas(choose_replicas(s.map, s.replicated, topo, demand, 1), 0),
            (std::vector<int64_t>{5, 0}));
  EXPECT_EQ(quotas(choose_replicas(s.map, s.replicated, topo, demand, 0), 0),
            (std::vector<int64_t>{5, 0}));
  EXPECT_EQ(quotas(choose_replicas(s.map, s.replicated, topo, demand, 2), 0),
            (std::vector<int64_t>{0, 5}));
  // Without a copy on its node, a sender spreads over all copies by load.
  const Routes far = setup({{1, 0}}, 4);
  const ReplicaChoice choice =
      choose_replicas(far.map, far.replicated, topo, ReplicaDemand{{0, 4, 0, 0}, {0, 0, 8, 0}}, 2);
  EXPECT_EQ(quotas(choice, 0), (std::vector<int64_t>{2, 6}));  // levels ranks 0 and 1 at 6
}

TEST(ReplicaChoice, TranslatesRowsInTokenOrderFillingCopiesInListOrder) {
  const Routes s = setup({{0}, {2, 1}}, 3);
  ReplicaChoice choice;
  choice.quota_begin = {0, 2};
  choice.quota = {1, 2};  // first row of expert 1 to rank 2's copy, the next two to rank 1's
  const int64_t ids[] = {1, 0, -1, 1, 1, 0};
  Result<std::vector<int64_t>> physical = to_physical_ids(ids, 6, s.map, s.replicated, choice);
  ASSERT_TRUE(physical.ok());
  // Physical experts: rank 0 {0}, rank 1 {1}, rank 2 {1}: ids 0, 1, 2.
  EXPECT_EQ(physical.value(), (std::vector<int64_t>{2, 0, -1, 1, 1, 0}));
  choice.quota = {1, 1};  // one row short
  EXPECT_EQ(to_physical_ids(ids, 6, s.map, s.replicated, choice).status().code(),
            StatusCode::kInternal);
}

}  // namespace
}  // namespace fusco::plan
