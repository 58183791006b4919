// A communicator builds each plan in the memory of a plan its holders dropped
// (plan/plan_memory.hpp). A recycled plan must equal a plan built in new memory, field by
// field, whatever the shapes, options and layouts of the plans before it.

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "communicator_impl.hpp"
#include "multirank/harness.hpp"
#include "plan/plan_memory.hpp"
#include "testing/rank_threads.hpp"

namespace fusco {
namespace {

using testing::Case;

constexpr int kWorld = 4;
constexpr int kRanksPerNode = 2;

// Every field a plan's users read, except the group's identity and plan count.
::testing::AssertionResult same_plan(const detail::PlanData& got, const detail::PlanData& want) {
  const std::vector<std::pair<const char*, bool>> fields = {
      {"rank", got.rank == want.rank},
      {"num_tokens", got.num_tokens == want.num_tokens},
      {"topk", got.topk == want.topk},
      {"num_experts", got.num_experts == want.num_experts},
      {"tokens_per_expert", got.tokens_per_expert == want.tokens_per_expert},
      {"padded_tokens_per_expert", got.padded_tokens_per_expert == want.padded_tokens_per_expert},
      {"dropped_per_expert", got.dropped_per_expert == want.dropped_per_expert},
      {"padding", got.padding == want.padding},
      {"recv_local_experts", got.recv_local_experts == want.recv_local_experts},
      {"num_recv_rows", got.num_recv_rows == want.num_recv_rows},
      {"local_experts", got.local_experts == want.local_experts},
      {"slot_ranks", got.slot_ranks == want.slot_ranks},
      {"direct_peers", got.direct_peers == want.direct_peers},
      {"direct", got.direct == want.direct},
      {"staged_out", got.staged_out == want.staged_out},
      {"staged_in", got.staged_in == want.staged_in},
      {"partial_sums", got.partial_sums == want.partial_sums},
      {"forward_rows", got.forward_rows == want.forward_rows},
      {"forward_out", got.forward_out == want.forward_out},
      {"forward_in", got.forward_in == want.forward_in},
      {"token_group_begin", got.token_group_begin == want.token_group_begin},
      {"group_term_begin", got.group_term_begin == want.group_term_begin},
      {"terms", got.terms == want.terms},
      {"return_rows_total", got.return_rows_total == want.return_rows_total},
      {"token_return_end", got.token_return_end == want.token_return_end},
      {"stats.received_rows", got.stats.received_rows == want.stats.received_rows},
      {"stats.inter_node_rows", got.stats.inter_node_rows == want.stats.inter_node_rows},
      {"stats.rows_per_destination",
       got.stats.rows_per_destination == want.stats.rows_per_destination},
      {"stats.wire_rows_per_destination",
       got.stats.wire_rows_per_destination == want.stats.wire_rows_per_destination},
      {"stats.relay_forwarded_rows",
       got.stats.relay_forwarded_rows == want.stats.relay_forwarded_rows},
  };
  for (const auto& [name, equal] : fields) {
    if (!equal) return ::testing::AssertionFailure() << name << " differs";
  }
  return ::testing::AssertionSuccess();
}

// The cases of one long-lived group: random ones folded onto it (every layout, dedup mode,
// relay policy, map kind, T = 0 on some ranks), largest and smallest mixed.
std::vector<Case> cases_for_one_group(bool direct, uint64_t first_seed, int count) {
  std::vector<Case> cases;
  for (int i = 0; i < count; ++i) {
    Case c = testing::fitted_to(testing::random_case(first_seed + static_cast<uint64_t>(i)), kWorld,
                                kRanksPerNode);
    c.direct_access = direct;
    cases.push_back(c);
  }
  return cases;
}

Result<std::vector<Communicator>> group(bool direct) {
  return Communicator::Impl::create_local(kWorld, Topology::nodes_of(kWorld, kRanksPerNode),
                                          direct);
}

Result<Plan> plan_case(const Case& c, Communicator& comm, int rank) {
  std::vector<int64_t> ids = testing::routing_of(c, rank);
  const TensorView idx =
      TensorView::host(ids.data(), DType::kInt64, {testing::tokens_of(c, rank), c.topk});
  return comm.plan(idx, c.experts, testing::map_of(c), testing::options_of(c));
}

// One group runs case after case (each plan dropped after its dispatch and combine, so the
// next is built in its memory); every result equals the reference oracle's.
void run_cases_in_one_group(bool direct) {
  auto comms = group(direct);
  ASSERT_TRUE(comms.ok()) << comms.status().to_string();
  for (const Case& c : cases_for_one_group(direct, 9100, 24)) {
    std::vector<testing::RankResult> results(kWorld);
    testing::run_ranks(kWorld, [&](int rank) -> Status {
      const auto r = static_cast<size_t>(rank);
      results[r] = testing::run_rank(c, comms.value()[r], rank);
      return results[r].status;
    });
    ASSERT_TRUE(testing::every_rank_matches(c, results));
  }
}

TEST(PlanReuse, CaseAfterCaseInOneGroup_ThreadsThatShareMemory_MatchTheReference) {
  run_cases_in_one_group(true);
}

TEST(PlanReuse, CaseAfterCaseInOneGroup_RanksLikeProcesses_MatchTheReference) {
  run_cases_in_one_group(false);
}

// Plans held while others are dropped: the recycled ones (from a pool of several) equal
// plans of a new group, field by field.
TEST(PlanReuse, RecycledPlans_EqualPlansBuiltInNewMemory) {
  for (const bool direct : {true, false}) {
    auto reused = group(direct);
    ASSERT_TRUE(reused.ok());
    std::vector<std::vector<Plan>> held(kWorld);
    int index = 0;
    for (const Case& c : cases_for_one_group(direct, 9300, 16)) {
      auto fresh = group(direct);
      ASSERT_TRUE(fresh.ok());
      std::vector<Plan> got(kWorld), want(kWorld);
      const std::vector<Status> statuses = testing::run_ranks(kWorld, [&](int rank) -> Status {
        const auto r = static_cast<size_t>(rank);
        Result<Plan> a = plan_case(c, reused.value()[r], rank);
        FUSCO_RETURN_IF_ERROR(a.status());
        got[r] = a.value();
        Result<Plan> b = plan_case(c, fresh.value()[r], rank);
        FUSCO_RETURN_IF_ERROR(b.status());
        want[r] = b.value();
        return Status();
      });
      for (int r = 0; r < kWorld; ++r) {
        const auto rr = static_cast<size_t>(r);
        ASSERT_TRUE(statuses[rr].ok()) << statuses[rr].to_string() << " " << c.describe();
        EXPECT_TRUE(same_plan(got[rr].data(), want[rr].data()))
            << "rank " << r << " " << c.describe();
        // Every third plan stays held; the pattern leaves 1 to 5 plans alive at a time.
        if (index % 3 == 0) held[rr].push_back(got[rr]);
        if (held[rr].size() > 4) held[rr].erase(held[rr].begin());
      }
      ++index;
    }
  }
}

TEST(PlanMemory, DroppedPlan_IsBuiltInAgain_HeldPlanIsNot) {
  auto memory = std::make_shared<plan::PlanMemory>();
  std::unique_ptr<detail::PlanData> first = memory->take();
  first->slot_ranks.resize(1000);
  const detail::PlanData* first_address = first.get();
  const int32_t* first_ranks = first->slot_ranks.data();
  std::shared_ptr<const detail::PlanData> held = memory->publish(std::move(first));
  EXPECT_EQ(memory->live(), 1u);

  std::unique_ptr<detail::PlanData> second = memory->take();  // the first is still held
  EXPECT_NE(second.get(), first_address);
  std::shared_ptr<const detail::PlanData> second_held = memory->publish(std::move(second));
  second_held.reset();
  held.reset();  // returned last: taken first
  EXPECT_EQ(memory->live(), 0u);
  EXPECT_EQ(memory->spares(), 2u);  // two were alive at once: two are kept

  std::unique_ptr<detail::PlanData> again = memory->take();
  EXPECT_TRUE(again->slot_ranks.empty());  // emptied, its array kept
  EXPECT_GE(again->slot_ranks.capacity(), 1000u);
  EXPECT_EQ(again->slot_ranks.data(), first_ranks);
}

TEST(PlanMemory, PlanOutlivingItsCommunicator_IsFreedNotReturned) {
  std::shared_ptr<const detail::PlanData> plan;
  {
    auto memory = std::make_shared<plan::PlanMemory>();
    plan = memory->publish(memory->take());
  }
  plan.reset();  // the memory is gone: the deleter frees it (ASan would catch a use after free)
  SUCCEED();
}

}  // namespace
}  // namespace fusco
