// The one-GPU engine with its logical ranks grouped into several nodes: plans stage rows
// between nodes (rank and node dedup, rail and balanced relays) and the group runs that path
// with the direct kernels — gather, transfer, fan-out at the target; relay sums back — and
// every rank's results equal the reference bit for bit. On the host backend everywhere, on
// CUDA where there is a GPU; the programme's lists alone run on the CPU in
// tests/multirank/staged_programme_test.cpp.

#include <gtest/gtest.h>

#include "fusco/gpu.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

// `c` on a group of its own world and nodes.
::testing::AssertionResult on_nodes_matches_reference(Case c, Backend backend) {
  if (c.dtype == DType::kFloat64) c.dtype = DType::kInt64;  // the GPU sums fp32/fp16/bf16
  c.direct_access = true;
  auto group = group_on(backend, c.world, c.ranks_per_node);
  if (!group.ok()) return ::testing::AssertionFailure() << group.status().to_string();
  return device_matches_reference(*group.value(), c);
}

using DeviceGroupNodes = OnEveryBackend;
FUSCO_ON_EVERY_BACKEND(DeviceGroupNodes);

TEST_P(DeviceGroupNodes, RandomCases_MatchReference) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    EXPECT_TRUE(on_nodes_matches_reference(random_case(seed), GetParam())) << "seed " << seed;
  }
}

TEST_P(DeviceGroupNodes, TwoNodesOfFour_EveryDedupAndRelayPolicy_DeepSeekRows) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
      Case c;
      c.world = 8;
      c.ranks_per_node = 4;
      c.experts = 64;
      c.topk = 8;
      c.hidden = 7168;
      c.tokens_each = 64;
      c.dedup = dedup;
      c.relay = relay;
      c.extra_cols = 2;  // the companion rows travel the staged path too
      EXPECT_TRUE(on_nodes_matches_reference(c, GetParam()))
          << "dedup " << dedup_name(dedup) << " relay " << relay_policy_name(relay);
    }
  }
}

TEST_P(DeviceGroupNodes, PlansOfAnotherCall_AreAClearError) {
  auto group = group_on(GetParam(), 4, 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  std::vector<int64_t> ids = {2, 3, 3, 2};  // every rank's tokens go to the other node
  const std::vector<TensorView> idx(4, TensorView::host(ids.data(), DType::kInt64, {2, 2}));
  auto first = group.value()->plan(idx, 4);
  auto second = group.value()->plan(idx, 4);
  ASSERT_TRUE(first.ok() && second.ok());
  std::vector<gpu::DevicePlan> mixed = first.value();
  mixed[1] = second.value()[1];
  DeviceMemory memory(ops_of(*group.value()));
  std::vector<TensorView> x, recv;
  for (int r = 0; r < 4; ++r) {
    x.push_back(
        on_device(memory.copy_of(std::vector<std::byte>(2 * 8 * 4)), DType::kFloat32, 2, 8));
    const int64_t rows = mixed[static_cast<size_t>(r)].num_recv_rows();
    recv.push_back(on_device(memory.copy_of(std::vector<std::byte>(static_cast<size_t>(rows) * 32)),
                             DType::kFloat32, rows, 8));
  }
  const Status status = group.value()->dispatch(mixed, x, recv);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("plans[1] comes from another plan() call"), std::string::npos)
      << status.message();
}

TEST_P(DeviceGroupNodes, PlanningOnTheDevice_IsForOneNode) {
  auto group = group_on(GetParam(), 4, 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory(ops_of(*group.value()));
  const std::vector<TensorView> idx(
      4, on_device(memory.copy_of(std::vector<std::byte>(16)), DType::kInt64, 1, 2));
  auto plans = group.value()->plan_on_device(idx, 4);
  ASSERT_FALSE(plans.ok());
  EXPECT_EQ(plans.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(plans.status().message().find("groups its ranks into 2 nodes"), std::string::npos)
      << plans.status().message();
}

TEST(DeviceGroupNodesArgs, NegativeRanksPerNode_NamesTheArgument) {
  auto group = gpu::DeviceGroup::create(4, 0, -2);
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(group.status().message().find("ranks_per_node = -2 must be 0 (one node) or positive"),
            std::string::npos)
      << group.status().message();
}

}  // namespace
}  // namespace fusco::testing
