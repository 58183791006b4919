// The planner's pure steps, run for one rank alone (no communication).

#include <gtest/gtest.h>

#include "core/wire.hpp"
#include "plan/planner.hpp"

namespace fusco::plan {
namespace {

Bytes counts(std::vector<int64_t> values) {
  core::WireWriter writer;
  writer.put_array(values.data(), values.size());
  return writer.take();
}

std::vector<int64_t> decode(const Bytes& bytes) {
  std::vector<int64_t> values(bytes.size() / sizeof(int64_t));
  core::WireReader reader(bytes);
  EXPECT_TRUE(reader.get_array(values.data(), values.size()).ok());
  return values;
}

TEST(ReceiverOffsets, ExpertMajorThenSourceRank) {
  // Three sources, two local experts.
  Result<ReceiverOffsets> offsets =
      compute_receiver_offsets({counts({2, 1}), counts({0, 4}), counts({3, 0})}, 2);
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ(offsets.value().tokens_per_expert, (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(offsets.value().num_recv_rows, 10);
  // Expert 0 rows: source 0 at 0, source 1 at 2, source 2 at 2; expert 1 from row 5. Each
  // message ends with the overflow pair (none).
  EXPECT_EQ(decode(offsets.value().starts[0]), (std::vector<int64_t>{0, 5, -1, 0}));
  EXPECT_EQ(decode(offsets.value().starts[1]), (std::vector<int64_t>{2, 6, -1, 0}));
  EXPECT_EQ(decode(offsets.value().starts[2]), (std::vector<int64_t>{2, 10, -1, 0}));
  EXPECT_TRUE(offsets.value().padding.empty());
}

TEST(ReceiverOffsets, AlignedBlocksArePaddedAndThePaddingListed) {
  // Expert 0 gets 5 rows, expert 1 gets 4: blocks of 8 and 4 with alignment 4.
  Result<ReceiverOffsets> offsets = compute_receiver_offsets(
      {counts({2, 1}), counts({0, 3}), counts({3, 0})}, 2, RecvLayout::expert_major(4));
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ(offsets.value().tokens_per_expert, (std::vector<int64_t>{5, 4}));
  EXPECT_EQ(offsets.value().padded_tokens_per_expert, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(offsets.value().num_recv_rows, 12);
  EXPECT_EQ(offsets.value().padding, (std::vector<std::pair<int64_t, int64_t>>{{5, 8}}));
  EXPECT_EQ(decode(offsets.value().starts[1]), (std::vector<int64_t>{2, 9, -1, 0}));
}

TEST(ReceiverOffsets, CapacityBlocksCountDropsAndReportTheFirstOverflow) {
  // Capacity 3: expert 0 gets 5 (2 dropped), expert 1 gets 1 (2 rows of padding).
  Result<ReceiverOffsets> offsets = compute_receiver_offsets({counts({2, 1}), counts({3, 0})}, 2,
                                                             RecvLayout::capacity_bounded(3));
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ(offsets.value().tokens_per_expert, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(offsets.value().dropped_per_expert, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(offsets.value().num_recv_rows, 6);
  EXPECT_EQ(offsets.value().padding, (std::vector<std::pair<int64_t, int64_t>>{{4, 6}}));
  // Source 1's expert-0 rows start at 2: its first row lands, the next two are dropped.
  EXPECT_EQ(decode(offsets.value().starts[1]), (std::vector<int64_t>{2, 4, 0, 5}));
}

TEST(ReceiverOffsets, RankMajorGivesEachSourceOneBlock) {
  Result<ReceiverOffsets> offsets = compute_receiver_offsets(
      {counts({2, 1}), counts({0, 3}), counts({3, 0})}, 2, RecvLayout::rank_major());
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ(decode(offsets.value().starts[0]), (std::vector<int64_t>{0, 0, -1, 0}));
  EXPECT_EQ(decode(offsets.value().starts[1]), (std::vector<int64_t>{3, 3, -1, 0}));
  EXPECT_EQ(decode(offsets.value().starts[2]), (std::vector<int64_t>{6, 6, -1, 0}));
  EXPECT_EQ(offsets.value().num_recv_rows, 9);
}

TEST(ReceiverOffsets, TruncatedCountsAreAnInternalError) {
  Result<ReceiverOffsets> offsets = compute_receiver_offsets({counts({1})}, 2);
  ASSERT_FALSE(offsets.ok());
  EXPECT_EQ(offsets.status().code(), StatusCode::kInternal);
}

// Found by fusco_parse_fuzzer: counts that would overflow the offsets are refused.
TEST(ReceiverOffsets, NegativeOrImpossibleCountsAreAnInternalError) {
  for (const int64_t bad : {int64_t{-1}, int64_t{1} << 41, INT64_MAX}) {
    Result<ReceiverOffsets> offsets =
        compute_receiver_offsets({counts({1, bad}), counts({2, 3})}, 2);
    ASSERT_FALSE(offsets.ok()) << bad;
    EXPECT_EQ(offsets.status().code(), StatusCode::kInternal);
    EXPECT_NE(offsets.status().message().find("impossible value"), std::string::npos);
  }
}

// Staged metadata whose counts exceed what the message can hold is refused before anything
// is allocated from them.
TEST(StagedMetadata, CountsLargerThanTheMessageAreAnInternalError) {
  detail::PlanData plan;
  core::WireWriter writer;
  writer.put<int64_t>(int64_t{1} << 50);  // entries
  writer.put<int64_t>(int64_t{1} << 50);  // fanout rows
  writer.put<int64_t>(0);
  const Status status = decode_staged_in(plan, 3, writer.take());
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_NE(status.message().find("from rank 3"), std::string::npos);
  EXPECT_TRUE(plan.staged_in.empty());
}

// Found by fusco_parse_fuzzer: a message with no entries (only its header) decodes to an
// empty list without touching an empty array's (null) data.
TEST(StagedMetadata, AHeaderWithoutEntries_IsAnEmptyList) {
  detail::PlanData plan;
  core::WireWriter writer;
  writer.put<int64_t>(0);  // entries
  writer.put<int64_t>(0);  // fanout rows
  ASSERT_TRUE(decode_staged_in(plan, 2, writer.take()).ok());
  ASSERT_EQ(plan.staged_in.size(), 1u);
  EXPECT_EQ(plan.staged_in[0].num_entries(), 0);
  EXPECT_TRUE(plan.staged_in[0].fanout.empty());
}

TEST(ExpertCounts, OneMessagePerDestinationWithItsLocalExperts) {
  std::vector<int32_t> ids = {0, 3, 3, 2};
  Result<core::ResolvedExpertMap> map = core::resolve_expert_map(ExpertMap(), 4, 2);
  Result<core::Layout> layout =
      core::build_layout(TensorView::host(ids.data(), DType::kInt32, {2, 2}), map.value());
  const std::vector<Bytes> out = encode_expert_counts(layout.value(), map.value());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(decode(out[0]), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(decode(out[1]), (std::vector<int64_t>{1, 2}));
}

}  // namespace
}  // namespace fusco::plan
