// Receive layouts: expert-major with aligned (zero-padded) blocks, rank-major, and
// capacity-bounded blocks with overflow dropped and counted or refused. Dispatch and combine
// match the reference for each.

#include <gtest/gtest.h>

#include <numeric>

#include "multirank/harness.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::testing {
namespace {

// 4 ranks, 2 per node; every rank's 20 tokens send slot 0 to expert 1 (rank 0) and slot 1
// to expert 2 + t % 6.
Case hot_case(RecvLayout layout) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.topk = 2;
  c.experts = 8;
  c.tokens_each = 20;
  c.layout = layout;
  for (int r = 0; r < 4; ++r) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < 20; ++t) {
      ids.push_back(1);
      ids.push_back(2 + t % 6);
    }
    c.ids.push_back(ids);
  }
  return c;
}

TEST(Layout, EveryLayoutEveryDedupWithAndWithoutDirectAccess_MatchesReference) {
  for (RecvLayout layout :
       {RecvLayout::expert_major(), RecvLayout::expert_major(16), RecvLayout::rank_major(),
        RecvLayout::capacity_bounded(9), RecvLayout::capacity_bounded(0)}) {
    Case c;
    c.world = 5;
    c.ranks_per_node = 2;
    c.experts = 10;
    c.hidden = 9;
    c.dtype = DType::kBFloat16;
    c.layout = layout;
    c.seed = 7;
    EXPECT_TRUE(matches_reference_in_every_mode(c));
  }
}

TEST(Layout, AlignedBlocks_PaddedToTheAlignmentAndZeroed) {
  const Case c = hot_case(RecvLayout::expert_major(32));
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  const RankResult& rank0 = got.results[0];
  // Rank 0 holds experts 0 (no rows) and 1 (80 rows): blocks of 0 and 96 rows.
  EXPECT_EQ(rank0.tokens_per_expert, (std::vector<int64_t>{0, 80}));
  EXPECT_EQ(rank0.padded_tokens_per_expert, (std::vector<int64_t>{0, 96}));
  const size_t row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  ASSERT_EQ(rank0.recv.size(), 96 * row_bytes);
  for (size_t b = 80 * row_bytes; b < rank0.recv.size(); ++b) {
    ASSERT_EQ(rank0.recv[b], std::byte{0}) << "padding byte " << b;  // the harness fills 0x5a
  }
  EXPECT_TRUE(matches_reference(c));
}

TEST(Layout, Capacity_DropsAndCountsTheOverflowPerExpert) {
  // Expert 1 gets 80 rows for a capacity of 30: 50 dropped; slot 0 of the dropped tokens
  // contributes nothing to combine (the reference agrees bit for bit).
  for (Dedup dedup : {Dedup::kNone, Dedup::kNode}) {
    Case c = hot_case(RecvLayout::capacity_bounded(30));
    c.dedup = dedup;
    const Outcome got = run_case(c);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(got.results[0].tokens_per_expert, (std::vector<int64_t>{0, 30}));
    EXPECT_EQ(got.results[0].dropped_per_expert, (std::vector<int64_t>{0, 50}));
    EXPECT_EQ(got.results[0].padded_tokens_per_expert, (std::vector<int64_t>{30, 30}));
    // The first 30 rows in expert-major order are kept: all 20 of rank 0, the first 10 of
    // rank 1; the others' slot 0 goes nowhere (slot rank -1).
    EXPECT_EQ(got.results[1].stats.wire_rows_per_destination[0], 10);
    EXPECT_TRUE(matches_reference(c));
  }
}

TEST(Layout, Capacity_OverflowAsErrorFailsEveryRankNamingTheExpert_GroupStaysUsable) {
  Case c = hot_case(RecvLayout::capacity_bounded(30, RecvLayout::Overflow::kError));
  auto comms = Communicator::create_local(4, Topology::nodes_of(4, 2));
  ASSERT_TRUE(comms.ok());
  const auto statuses = run_ranks(4, [&](int r) -> Status {
    std::vector<int64_t> ids = c.ids[static_cast<size_t>(r)];
    PlanOptions options;
    options.layout = c.layout;
    Result<Plan> plan = comms.value()[static_cast<size_t>(r)].plan(
        TensorView::host(ids.data(), DType::kInt64, {20, 2}), 8, ExpertMap(), options);
    if (plan.ok()) return Status(StatusCode::kInternal, "planned despite the overflow");
    if (plan.status().code() != StatusCode::kCapacityExceeded) return plan.status();
    if (plan.status().message() !=
        "expert 1 (local slot 1 of rank 0) gets 80 rows but layout.capacity is 30 "
        "(overflow = error; use a larger capacity or overflow = drop)") {
      return Status(StatusCode::kInternal, "unexpected message: " + plan.status().message());
    }
    options.layout.capacity = 80;  // enough: the same group plans again
    return comms.value()[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt64, {20, 2}), 8, ExpertMap(), options)
        .status();
  });
  for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Layout, RankMajor_RowsBySourceThenTokenThenSlot_WithTheirExperts) {
  const Case c = hot_case(RecvLayout::rank_major());
  const Outcome got = run_case(c);
  ASSERT_TRUE(got.ok);
  // Rank 1 holds experts 2 and 3: from each source, the 8 tokens t with t % 6 in {0, 1}, in
  // token order (0, 1, 6, 7, ...), so its rows alternate experts 2 and 3 (slots 0 and 1).
  const std::vector<int32_t>& experts = got.results[1].recv_local_experts;
  ASSERT_EQ(experts.size(), static_cast<size_t>(4 * 8));
  for (size_t i = 0; i < experts.size(); ++i) {
    EXPECT_EQ(experts[i], i % 2 == 0 ? 0 : 1) << i;
  }
  EXPECT_TRUE(matches_reference(c));
}

TEST(Layout, DifferentLayoutsOnTwoRanksAreAMismatch) {
  auto comms = Communicator::create_local(2, Topology::single_node(2));
  ASSERT_TRUE(comms.ok());
  const auto statuses = run_ranks(2, [&](int r) -> Status {
    std::vector<int64_t> ids = {0, 1};
    PlanOptions options;
    options.layout = r == 0 ? RecvLayout::expert_major(8) : RecvLayout::expert_major(16);
    return comms.value()[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt64, {2, 1}), 2, ExpertMap(), options)
        .status();
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch) << s.to_string();
    EXPECT_NE(s.message().find("options.layout.alignment differs"), std::string::npos);
  }
}

TEST(Layout, BadLayoutFieldsNameTheFieldAndTheLimit) {
  EXPECT_EQ(RecvLayout::expert_major(0).validate().message(),
            "layout.alignment = 0 is outside [1, 2^20]");
  EXPECT_EQ(RecvLayout::capacity_bounded(-1).validate().message(),
            "layout.capacity = -1 is outside [0, 2^40]");
  RecvLayout odd = RecvLayout::rank_major();
  odd.alignment = 4;
  EXPECT_EQ(odd.validate().message(),
            "layout.alignment = 4 applies to the expert-major layout only; this layout is "
            "rank-major");
}

}  // namespace
}  // namespace fusco::testing
