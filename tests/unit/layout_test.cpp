// The layout step: counting sort of (token, slot) pairs by physical expert, and the expert map.

#include "core/layout.hpp"

#include <gtest/gtest.h>

#include "fusco/expert_map.hpp"
#include "fusco/tensor.hpp"

namespace fusco::core {
namespace {

TEST(ExpertMap, ContiguousResolvesRankMajor) {
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap(), 8, 4);
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map.value().owner, (std::vector<int32_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(map.value().local_slot, (std::vector<int32_t>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(map.value().rank_begin, (std::vector<int64_t>{0, 2, 4, 6, 8}));
}

TEST(ExpertMap, ExplicitUnevenOwnersGetSlotsInExpertOrder) {
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap::from_owners({2, 0, 2, 2, 0}), 5, 3);
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map.value().local_slot, (std::vector<int32_t>{0, 0, 1, 2, 1}));
  EXPECT_EQ(map.value().rank_begin, (std::vector<int64_t>{0, 2, 2, 5}));
  EXPECT_EQ(map.value().physical, (std::vector<int64_t>{2, 0, 3, 4, 1}));
  EXPECT_EQ(map.value().num_local(1), 0);
}

TEST(ExpertMap, FingerprintsDifferForDifferentMaps) {
  const uint64_t a = ExpertMap::from_owners({0, 1}).fingerprint(2, 2);
  const uint64_t b = ExpertMap::from_owners({1, 0}).fingerprint(2, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, ExpertMap::from_owners({0, 1}).fingerprint(2, 2));
  EXPECT_NE(ExpertMap().fingerprint(4, 2), ExpertMap().fingerprint(8, 2));
}

TEST(ExpertMap, ValidationNamesTheProblem) {
  EXPECT_NE(ExpertMap().validate(0, 2).message().find("num_experts = 0 is outside [1, 2^20"),
            std::string::npos);
  EXPECT_NE(ExpertMap::from_owners({0}).validate(2, 2).message().find(
                "expert_map has 1 owners but num_experts is 2"),
            std::string::npos);
}

TEST(ExpertMap, ReplicasBecomePhysicalExpertsInLogicalOrderPerRank) {
  // Expert 0 on ranks 1 and 0, expert 1 on rank 1, expert 2 on ranks 0, 2 and 1.
  Result<ResolvedExpertMap> map =
      resolve_expert_map(ExpertMap::with_replicas({{1, 0}, {1}, {0, 2, 1}}), 3, 3);
  ASSERT_TRUE(map.ok());
  const ResolvedExpertMap& m = map.value();
  EXPECT_TRUE(m.replicated);
  EXPECT_EQ(m.rank_begin, (std::vector<int64_t>{0, 2, 5, 6}));  // rank 0: {0, 2}; 1: {0, 1, 2}
  EXPECT_EQ(m.physical_logical, (std::vector<int64_t>{0, 2, 0, 1, 2, 2}));
  EXPECT_EQ(m.physical_owner, (std::vector<int32_t>{0, 0, 1, 1, 1, 2}));
  EXPECT_EQ(m.replica_begin, (std::vector<int64_t>{0, 2, 3, 6}));
  EXPECT_EQ(m.replica_physical, (std::vector<int64_t>{2, 0, 3, 1, 5, 4}));  // list order
  EXPECT_EQ(m.owner, (std::vector<int32_t>{1, 1, 0}));                      // primaries
  EXPECT_EQ(m.physical, (std::vector<int64_t>{2, 3, 1}));
  const ResolvedExpertMap physical = m.physical_map();
  EXPECT_FALSE(physical.replicated);
  EXPECT_EQ(physical.num_experts, 6);
  EXPECT_EQ(physical.local_slot, (std::vector<int32_t>{0, 1, 0, 1, 2, 0}));
}

TEST(ExpertMap, ReplicaValidationNamesTheExpertAndTheRank) {
  auto message = [](std::vector<std::vector<int32_t>> replicas, int64_t experts) {
    return ExpertMap::with_replicas(std::move(replicas)).validate(experts, 3).message();
  };
  EXPECT_EQ(message({{0}, {}}, 2),
            "expert_map replicas[1] is empty; every expert needs at least one rank");
  EXPECT_EQ(message({{0, 3}}, 1), "expert_map replicas[0][1] = 3 is outside [0, world_size=3)");
  EXPECT_EQ(message({{1}, {2, 0, 2}}, 2),
            "expert_map replicas[1] names rank 2 twice; a rank holds at most one copy of an "
            "expert");
  EXPECT_EQ(message({{1}}, 2), "expert_map has 1 replica lists but num_experts is 2");
  EXPECT_TRUE(ExpertMap::with_replicas({{1, 0}, {2}}).validate(2, 3).ok());
}

TEST(ExpertMap, ReplicaFingerprintsSeeEveryCopy) {
  const uint64_t a = ExpertMap::with_replicas({{0, 1}, {1}}).fingerprint(2, 2);
  EXPECT_NE(a, ExpertMap::with_replicas({{1, 0}, {1}}).fingerprint(2, 2));
  EXPECT_NE(a, ExpertMap::with_replicas({{0}, {1}}).fingerprint(2, 2));
  EXPECT_NE(ExpertMap::with_replicas({{0}, {1}}).fingerprint(2, 2),
            ExpertMap::from_owners({0, 1}).fingerprint(2, 2));
}

TEST(Layout, PairsSortedByPhysicalExpertThenTokenThenSlot) {
  // 3 tokens, k = 2, 4 experts on 2 ranks.
  std::vector<int32_t> ids = {3, 0, 0, -1, 3, 3};
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap(), 4, 2);
  Result<Layout> layout =
      build_layout(TensorView::host(ids.data(), DType::kInt32, {3, 2}), map.value());
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout.value().expert_begin, (std::vector<int64_t>{0, 2, 2, 2, 5}));
  // Expert 0: (t0, j1), (t1, j0); expert 3: (t0, j0), (t2, j0), (t2, j1).
  EXPECT_EQ(layout.value().pairs, (std::vector<int64_t>{1, 2, 0, 4, 5}));
}

TEST(Layout, Int64IdsAndZeroTokens) {
  std::vector<int64_t> ids;
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap(), 4, 2);
  Result<Layout> layout =
      build_layout(TensorView::host(ids.data(), DType::kInt64, {0, 8}), map.value());
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout.value().num_rows(), 0);
  EXPECT_EQ(layout.value().expert_begin.size(), 5u);
}

TEST(Layout, RejectsIdsOutsideRangeNamingTokenSlotAndValue) {
  std::vector<int32_t> ids = {0, 1, 2, 4};
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap(), 4, 2);
  Result<Layout> layout =
      build_layout(TensorView::host(ids.data(), DType::kInt32, {2, 2}), map.value());
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message(), "topk_idx[1, 1] = 4 is outside [-1, num_experts=4)");
}

TEST(Layout, RejectsBadShapesAndDtypes) {
  std::vector<int32_t> ids(4);
  Result<ResolvedExpertMap> map = resolve_expert_map(ExpertMap(), 4, 2);
  EXPECT_FALSE(build_layout(TensorView::host(ids.data(), DType::kInt32, {4}), map.value()).ok());
  EXPECT_FALSE(build_layout(TensorView::host(ids.data(), DType::kInt8, {2, 2}), map.value()).ok());
  EXPECT_FALSE(build_layout(TensorView::host(ids.data(), DType::kInt32, {4, 0}), map.value()).ok());
  EXPECT_FALSE(
      build_layout(TensorView::host(ids.data(), DType::kInt32, {-1, 2}), map.value()).ok());
  EXPECT_FALSE(build_layout(TensorView::host(nullptr, DType::kInt32, {2, 2}), map.value()).ok());
}

}  // namespace
}  // namespace fusco::core

namespace fusco {
namespace {

TEST(TensorChecks, RejectNegativeOverflowingNullAndMisalignedViews) {
  alignas(8) static char memory[64];
  EXPECT_TRUE(check_matrix(TensorView::host(memory, DType::kFloat32, {2, 3}), "x").ok());
  EXPECT_TRUE(check_matrix(TensorView::host(nullptr, DType::kFloat32, {0, 3}), "x").ok());
  const Status negative = check_matrix(TensorView::host(memory, DType::kFloat32, {-1, 3}), "x");
  EXPECT_NE(negative.message().find("x has a negative extent: [-1, 3] fp32 host"),
            std::string::npos)
      << negative.message();
  const Status huge =
      check_matrix(TensorView::host(memory, DType::kBFloat16, {int64_t{1} << 40, 1 << 22}), "x");
  EXPECT_NE(huge.message().find("is too large: its size in bytes exceeds 2^62"), std::string::npos)
      << huge.message();
  const Status null = check_matrix(TensorView::host(nullptr, DType::kInt8, {1, 1}), "recv");
  EXPECT_NE(null.message().find("recv [1, 1] int8 host has a null data pointer"), std::string::npos)
      << null.message();
  const Status misaligned =
      check_matrix(TensorView::host(memory + 1, DType::kBFloat16, {2, 2}), "x");
  EXPECT_NE(misaligned.message().find("data pointer is not aligned to its 2-byte elements"),
            std::string::npos)
      << misaligned.message();
  EXPECT_FALSE(check_matrix(TensorView::host(memory, DType::kFloat32, {2, 3, 1}), "x").ok());
  TensorView bad_dtype = TensorView::host(memory, DType::kFloat32, {1, 1});
  bad_dtype.dtype = static_cast<DType>(42);
  EXPECT_NE(check_matrix(bad_dtype, "x").message().find("dtype code 42"), std::string::npos);
}

}  // namespace
}  // namespace fusco
