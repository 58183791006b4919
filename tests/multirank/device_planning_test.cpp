// Planning on the GPU (plan_on_device) run on the CPU: every rank's layout, the group's count
// matrix and the per-expert and per-token steps the planning kernels run
// (core/device_plan_steps.hpp) give exactly the CPU planner's plan under the same capacity or
// expert-major layout: the same stores (rows dropped past a capacity included), the same
// combine terms in the same order, the same row counts, blocks and zeroed rows. An
// expert-major bound below the rows drops exactly the rows at or past it. tests/gpu runs the
// kernels themselves.

#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

#include "core/device_plan_steps.hpp"
#include "core/host_planning.hpp"
#include "core/layout.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"
#include "plan/plan_data.hpp"

namespace fusco::testing {
namespace {

// One rank's plan as the planning kernels leave it in device memory.
struct KernelPlan {
  std::vector<core::DirectStore> stores;  // [T * k]
  std::vector<int64_t> group_term_begin;  // [T + 1]
  std::vector<core::DirectTerm> terms;
  std::vector<int64_t> tokens_per_expert;
  std::vector<int64_t> dropped_per_expert;
  std::vector<int64_t> padded_tokens_per_expert;
  std::vector<std::pair<int64_t, int64_t>> unfilled;  // per local expert
  int64_t num_recv_rows = 0;
};

// Rank `rank`'s planning kernels over the group's counts, with ids of type Id, run on the host
// (core::planning_on_host, the GPU engine's host backend).
template <typename Id>
KernelPlan plan_rank(const core::GroupCounts& group, const core::ResolvedExpertMap& map,
                     const std::vector<Id>& ids, const std::vector<int64_t>& positions, int rank,
                     int topk) {
  const int64_t tokens = static_cast<int64_t>(ids.size()) / topk;
  const auto local = static_cast<size_t>(map.num_local(rank));
  std::vector<int64_t> first_row(static_cast<size_t>(group.physical));
  std::vector<int64_t> limit(static_cast<size_t>(group.physical));
  std::vector<int64_t> token_group_begin(static_cast<size_t>(tokens) + 1);
  std::vector<int64_t> unfilled(2 * local);
  std::vector<core::DirectTerm> terms(ids.size());
  KernelPlan plan;
  plan.stores.resize(ids.size());
  plan.group_term_begin.assign(static_cast<size_t>(tokens) + 1, -1);
  plan.tokens_per_expert.resize(local);
  plan.dropped_per_expert.resize(local);
  plan.padded_tokens_per_expert.resize(local);
  core::DevicePlanningArgs args;
  args.group = group;
  args.rank = rank;
  args.topk_idx = ids.data();
  args.ids_int64 = sizeof(Id) == sizeof(int64_t);
  args.num_tokens = tokens;
  args.topk = topk;
  args.num_experts = map.num_experts;
  args.physical = map.physical.data();
  args.positions = positions.data();
  args.first_row = first_row.data();
  args.limit = limit.data();
  args.stores = plan.stores.data();
  args.token_group_begin = token_group_begin.data();
  args.group_term_begin = plan.group_term_begin.data();
  args.terms = terms.data();
  args.tokens_per_expert = plan.tokens_per_expert.data();
  args.dropped_per_expert = plan.dropped_per_expert.data();
  args.padded_per_expert = plan.padded_tokens_per_expert.data();
  args.unfilled = unfilled.data();
  core::planning_on_host(args);
  terms.resize(static_cast<size_t>(plan.group_term_begin.back()));
  plan.terms = std::move(terms);
  for (size_t s = 0; s < local; ++s) {
    plan.unfilled.emplace_back(unfilled[2 * s], unfilled[2 * s + 1]);
  }
  plan.num_recv_rows =
      group.capacity_layout ? map.num_local(rank) * group.capacity : group.recv_rows;
  return plan;
}

// Every rank's layout (the order launch_layout gives), the count matrix, then each rank's
// planning; ids as int32 when the case says so. Expert-major buffers have `recv_rows` rows
// (0: the most that can arrive).
std::vector<KernelPlan> plan_as_the_kernels_do(const Case& c, int64_t recv_rows = 0) {
  Result<core::ResolvedExpertMap> resolved =
      core::resolve_expert_map(map_of(c), c.experts, c.world);
  EXPECT_TRUE(resolved.ok()) << resolved.status().to_string();
  const core::ResolvedExpertMap& map = resolved.value();
  const int64_t physical = map.num_physical();
  std::vector<int64_t> begins;
  std::vector<int64_t> tokens;
  std::vector<std::vector<int64_t>> ids(static_cast<size_t>(c.world));
  std::vector<std::vector<int64_t>> positions(static_cast<size_t>(c.world));
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    ids[rr] = routing_of(c, r);
    tokens.push_back(tokens_of(c, r));
    Result<core::Layout> layout = core::build_layout(
        TensorView::host(ids[rr].data(), DType::kInt64, {tokens_of(c, r), c.topk}), map);
    EXPECT_TRUE(layout.ok()) << layout.status().to_string();
    positions[rr].assign(ids[rr].size(), -1);
    for (size_t i = 0; i < layout.value().pairs.size(); ++i) {
      positions[rr][static_cast<size_t>(layout.value().pairs[i])] = static_cast<int64_t>(i);
    }
    begins.insert(begins.end(), layout.value().expert_begin.begin(),
                  layout.value().expert_begin.end());
  }
  core::GroupCounts group;
  group.begins = begins.data();
  group.physical = physical;
  group.world = c.world;
  group.owner = map.physical_owner.data();
  group.rank_begin = map.rank_begin.data();
  group.capacity_layout = c.layout.kind == RecvLayout::Kind::kCapacity;
  group.capacity = c.layout.capacity;
  group.alignment = c.layout.alignment;
  group.recv_rows =
      recv_rows > 0 ? recv_rows : core::most_recv_rows(tokens, c.topk, map, c.layout.alignment);
  std::vector<KernelPlan> plans;
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    if (c.int32_ids) {
      const std::vector<int32_t> narrow(ids[rr].begin(), ids[rr].end());
      plans.push_back(plan_rank(group, map, narrow, positions[rr], r, c.topk));
    } else {
      plans.push_back(plan_rank(group, map, ids[rr], positions[rr], r, c.topk));
    }
  }
  return plans;
}

using StoreKey = std::tuple<int32_t, int64_t, int32_t>;  // (rank, row, token)

::testing::AssertionResult kernels_plan_as_the_host(const Case& c) {
  const std::vector<Plan> host = plans_of_case(c);
  const std::vector<KernelPlan> device = plan_as_the_kernels_do(c);
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    if (!host[rr].valid()) return ::testing::AssertionFailure() << "no host plan";
    const detail::PlanData& want = host[rr].data();
    const KernelPlan& got = device[rr];
    auto fail = [&](const char* what) {
      return ::testing::AssertionFailure()
             << "rank " << r << ": " << what << " differ in " << c.describe();
    };
    const bool capacity = c.layout.kind == RecvLayout::Kind::kCapacity;
    if (capacity ? got.num_recv_rows != want.num_recv_rows
                 : got.num_recv_rows < want.num_recv_rows) {
      return fail("receive rows");
    }
    if (got.tokens_per_expert != want.tokens_per_expert) return fail("tokens per expert");
    if (got.dropped_per_expert != want.dropped_per_expert) return fail("dropped rows");
    if (got.padded_tokens_per_expert != want.padded_tokens_per_expert) return fail("blocks");
    std::vector<std::pair<int64_t, int64_t>> zeroed;  // what dispatch zeroes
    for (const auto& [begin, end] : got.unfilled) {
      if (begin < end) zeroed.emplace_back(begin, end);
    }
    if (zeroed != want.padding) return fail("padding rows");
    std::vector<StoreKey> want_stores, got_stores;
    for (const detail::DirectRow& row : want.direct) {
      want_stores.emplace_back(row.rank, row.row, row.token);
    }
    for (size_t flat = 0; flat < got.stores.size(); ++flat) {
      const core::DirectStore& store = got.stores[flat];
      if (store.token != static_cast<int32_t>(flat / static_cast<size_t>(c.topk))) {
        return fail("store tokens");
      }
      if (store.rank != want.slot_ranks[flat]) return fail("slot ranks");
      if (store.rank != core::DirectStore::kNothing) {
        got_stores.emplace_back(store.rank, store.row, store.token);
      }
    }
    std::sort(want_stores.begin(), want_stores.end());
    std::sort(got_stores.begin(), got_stores.end());
    if (got_stores != want_stores) return fail("stores");
    for (int64_t t = 0; t < want.num_tokens; ++t) {
      const auto tt = static_cast<size_t>(t);
      const int64_t g0 = want.token_group_begin[tt];
      const int64_t g1 = want.token_group_begin[tt + 1];
      if (g1 - g0 > 1) return fail("group counts (one node sums in one group)");
      const int64_t first = g1 > g0 ? want.group_term_begin[static_cast<size_t>(g0)] : 0;
      const int64_t end = g1 > g0 ? want.group_term_begin[static_cast<size_t>(g1)] : 0;
      if (got.group_term_begin[tt + 1] - got.group_term_begin[tt] != end - first) {
        return fail("term counts");
      }
      for (int64_t i = 0; i < end - first; ++i) {
        const detail::CombineTerm& a = want.terms[static_cast<size_t>(first + i)];
        const core::DirectTerm& b = got.terms[static_cast<size_t>(got.group_term_begin[tt] + i)];
        if (a.rank != b.rank || a.slot != b.slot || a.row != b.row) return fail("terms");
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(DevicePlanning, OneNodeRoutingCases_ExpertMajorAlignments_EqualTheHostPlan) {
  for (int world : {1, 2, 3, 4, 8}) {
    int index = 0;
    for (Case c : one_node_cases(world)) {
      ++index;
      if (!c.replicas.empty()) continue;
      for (int64_t alignment : {1, 8}) {
        c.layout = RecvLayout::expert_major(alignment);
        EXPECT_TRUE(kernels_plan_as_the_host(c))
            << "world " << world << " case " << index << " alignment " << alignment;
      }
    }
  }
}

TEST(DevicePlanning, ExpertMajorBoundBelowTheRows_DropsTheRowsAtOrPastIt) {
  Case c;
  c.world = 2;
  c.ranks_per_node = 2;
  c.experts = 4;  // rank 1 holds experts 2 and 3
  c.topk = 2;
  c.tokens = {2, 2};
  c.ids = {{2, 3, 2, 3}, {3, 2, 0, 1}};
  c.layout = RecvLayout::expert_major(1);
  // Rank 1 receives expert 2: 3 rows (rank 0: 2, rank 1: 1), expert 3: 3 rows; bound 4.
  const std::vector<KernelPlan> plans = plan_as_the_kernels_do(c, 4);
  EXPECT_EQ(plans[1].num_recv_rows, 4);
  EXPECT_EQ(plans[1].tokens_per_expert, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(plans[1].dropped_per_expert, (std::vector<int64_t>{0, 2}));
  // Rank 0's token 0 slot 1 takes expert 3's first row (row 3); its token 1 slot 1 is dropped.
  EXPECT_EQ(plans[0].stores[1].rank, 1);
  EXPECT_EQ(plans[0].stores[1].row, 3);
  EXPECT_EQ(plans[0].stores[3].rank, core::DirectStore::kNothing);
  EXPECT_EQ(plans[1].stores[0].rank, core::DirectStore::kNothing);  // expert 3's third row
  // Dropped rows are no combine terms: rank 0's token 1 sums one term.
  EXPECT_EQ(plans[0].group_term_begin, (std::vector<int64_t>{0, 2, 3}));
}

TEST(DevicePlanning, OneNodeRoutingCases_EveryCapacity_EqualTheHostPlan) {
  for (int world : {1, 2, 3, 4, 8}) {
    int index = 0;
    for (Case c : one_node_cases(world)) {
      ++index;
      if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
      for (int64_t capacity : {0, 1, 5, 1000}) {
        c.layout = RecvLayout::capacity_bounded(capacity);
        EXPECT_TRUE(kernels_plan_as_the_host(c))
            << "world " << world << " case " << index << " capacity " << capacity;
      }
    }
  }
}

TEST(DevicePlanning, HotExpertPastItsCapacity_KeepsTheFirstRowsInRankTokenSlotOrder) {
  Case c;
  c.world = 3;  // odd world
  c.ranks_per_node = 3;
  c.experts = 6;
  c.topk = 4;
  for (int r = 0; r < c.world; ++r) {  // every slot of every token names expert 4
    c.ids.push_back(std::vector<int64_t>(24 * 4, 4));
  }
  c.layout = RecvLayout::capacity_bounded(30);  // rank 0's 96 rows overflow it on their own
  ASSERT_TRUE(kernels_plan_as_the_host(c));
  const std::vector<KernelPlan> plans = plan_as_the_kernels_do(c);
  EXPECT_EQ(plans[2].tokens_per_expert, (std::vector<int64_t>{30, 0}));  // expert 4 is slot 0
  EXPECT_EQ(plans[2].dropped_per_expert, (std::vector<int64_t>{3 * 96 - 30, 0}));
  for (size_t flat = 0; flat < plans[0].stores.size(); ++flat) {  // rank 0's first 30 pairs
    const core::DirectStore& store = plans[0].stores[flat];
    EXPECT_EQ(store.rank, flat < 30 ? 2 : core::DirectStore::kNothing) << flat;
    if (flat < 30) {
      EXPECT_EQ(store.row, static_cast<int64_t>(flat));
    }
  }
  for (const KernelPlan& plan : std::vector<KernelPlan>{plans[1], plans[2]}) {
    for (const core::DirectStore& store : plan.stores) {  // rank 0's rows filled the block
      EXPECT_EQ(store.rank, core::DirectStore::kNothing);
    }
  }
}

TEST(DevicePlanning, RandomCasesOnOneNode_Int32AndInt64Ids_EqualTheHostPlan) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Case c = random_case(seed);
    if (!c.replicas.empty()) continue;
    c.ranks_per_node = c.world;
    c.direct_access = true;
    if (c.layout.kind != RecvLayout::Kind::kExpertMajor) {  // expert-major as drawn
      c.layout = RecvLayout::capacity_bounded(static_cast<int64_t>(seed % 7) * 3);
    }
    EXPECT_TRUE(kernels_plan_as_the_host(c)) << "seed " << seed;
  }
}

TEST(DevicePlanning, DeepSeekShape_EightRanks256Experts) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 8;
  c.topk = 8;
  c.experts = 256;
  c.tokens_each = 512;
  c.layout = RecvLayout::capacity_bounded(96);  // some experts overflow, most do not
  EXPECT_TRUE(kernels_plan_as_the_host(c));
}

}  // namespace
}  // namespace fusco::testing
