// Planning on the GPU (DeviceGroup::plan_on_device) through its public entry points: routing
// in device memory, planned by kernels at W = 1, 2, 3, 4 and 8 over every one-node routing
// case under capacity and expert-major layouts, dispatch and combine results and per-expert
// counts equal to the reference bit for bit; bad ids reported by check_routing() and planned
// as unused slots.
// On the host backend everywhere and on CUDA where there is a GPU (the argument checks run on
// the CPU in device_checks_test.cpp, the planning arithmetic alone in
// tests/multirank/device_planning_test.cpp).

#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

#include "baseline/unfused_device.hpp"
#include "fusco/gpu.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

using PlanOnDevice = OnEveryBackend;
FUSCO_ON_EVERY_BACKEND(PlanOnDevice);

TEST_P(PlanOnDevice, WorldSizes12348_EveryRoutingCase_CapacityAndExpertMajor_MatchReference) {
  for (int world : {1, 2, 3, 4, 8}) {
    auto group = group_on(GetParam(), world);
    ASSERT_TRUE(group.ok()) << group.status().to_string();
    int index = 0;
    for (Case c : one_node_cases(world)) {
      ++index;
      if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
      for (const RecvLayout& layout :
           {RecvLayout::capacity_bounded(0), RecvLayout::capacity_bounded(1),
            RecvLayout::capacity_bounded(5), RecvLayout::capacity_bounded(1000),
            RecvLayout::expert_major(1), RecvLayout::expert_major(8)}) {
        c.layout = layout;
        EXPECT_TRUE(device_matches_reference(*group.value(), c, Engine::kFused, Planning::kDevice))
            << "world " << world << " case " << index << " layout "
            << recv_layout_kind_name(layout.kind) << " " << layout.capacity << "/"
            << layout.alignment;
      }
    }
  }
}

TEST_P(PlanOnDevice, DeepSeekShape_Int32Ids_MatchesReference) {
  auto group = group_on(GetParam(), 8);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  Case c;
  c.world = 8;
  c.ranks_per_node = 8;
  c.topk = 8;
  c.experts = 256;
  c.hidden = 7168;
  c.tokens_each = 256;
  c.int32_ids = true;
  c.layout = RecvLayout::capacity_bounded(64);
  EXPECT_TRUE(device_matches_reference(*group.value(), c, Engine::kFused, Planning::kDevice));
}

TEST_P(PlanOnDevice, SamePlansAsPlanningOnTheHost_BitIdenticalResults) {
  auto group = group_on(GetParam(), 4);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  Case c;
  c.world = 4;
  c.ranks_per_node = 4;
  c.experts = 16;
  c.hidden = 4096;
  c.layout = RecvLayout::capacity_bounded(20);
  const std::vector<RankResult> host = run_on_device(*group.value(), c);
  const std::vector<RankResult> device =
      run_on_device(*group.value(), c, Engine::kFused, Planning::kDevice);
  for (size_t r = 0; r < host.size(); ++r) {
    ASSERT_TRUE(host[r].status.ok() && device[r].status.ok()) << device[r].status.to_string();
    EXPECT_EQ(device[r].recv, host[r].recv);
    EXPECT_EQ(device[r].out, host[r].out);
    EXPECT_EQ(device[r].tokens_per_expert, host[r].tokens_per_expert);
    EXPECT_EQ(device[r].dropped_per_expert, host[r].dropped_per_expert);
  }
}

TEST_P(PlanOnDevice, IdOutsideTheExperts_IsReportedByCheckRouting_AndMovesNothing) {
  auto group = group_on(GetParam(), 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory(ops_of(*group.value()));
  const std::vector<std::vector<int32_t>> ids = {{0, 3, 1, 1}, {2, 7, -1, 0}};  // 7: E = 4
  std::vector<TensorView> idx;
  for (const std::vector<int32_t>& rank_ids : ids) {
    std::vector<std::byte> bytes(rank_ids.size() * sizeof(int32_t));
    std::memcpy(bytes.data(), rank_ids.data(), bytes.size());
    idx.push_back(on_device(memory.copy_of(bytes), DType::kInt32, 2, 2));
  }
  PlanOptions options;
  options.layout = RecvLayout::capacity_bounded(4);
  auto plans = group.value()->plan_on_device(idx, 4, {}, options);
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  const Status status = group.value()->check_routing(plans.value());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("topk_idx[1][0, 1] = 7 is outside [-1, num_experts=4)"),
            std::string::npos)
      << status.message();
  // Planned as an unused slot: the five other ids each deliver their row, nothing else moves.
  ASSERT_TRUE(group.value()->synchronize().ok());
  for (const auto& [rank, want] :
       {std::pair{0, std::vector<int64_t>{2, 2}}, std::pair{1, std::vector<int64_t>{1, 1}}}) {
    const RankResult counts =
        counts_of_device_plan(plans.value()[static_cast<size_t>(rank)], ops_of(*group.value()));
    EXPECT_EQ(counts.tokens_per_expert, want) << "rank " << rank;
  }
}

TEST_P(PlanOnDevice, RankMajorLayout_IsUnsupportedAndNamesPlan) {
  auto group = group_on(GetParam(), 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory(ops_of(*group.value()));
  const std::vector<TensorView> idx(
      2, on_device(memory.copy_of(std::vector<std::byte>(16)), DType::kInt64, 1, 2));
  PlanOptions options;
  options.layout = RecvLayout::rank_major();
  auto plans = group.value()->plan_on_device(idx, 4, {}, options);
  ASSERT_FALSE(plans.ok());
  EXPECT_EQ(plans.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(plans.status().message().find("DeviceGroup::plan() has it"), std::string::npos);
}

TEST(PlanOnDeviceCuda, UnfusedBaselineWithDeviceMadePlans_IsAClearError) {
  FUSCO_SKIP_WITHOUT_GPU();
  auto group = gpu::DeviceGroup::create(2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory;
  const std::vector<TensorView> idx(
      2, on_device(memory.copy_of(std::vector<std::byte>(16)), DType::kInt64, 1, 2));
  auto plans = group.value()->plan_on_device(idx, 4);
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  EXPECT_FALSE(plans.value()[0].host().valid());
  auto baseline = baseline::UnfusedDevice::create(*group.value(), plans.value(), 64);
  ASSERT_FALSE(baseline.ok());
  EXPECT_EQ(baseline.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(baseline.status().message().find("plans[0] is not a plan from DeviceGroup::plan()"),
            std::string::npos)
      << baseline.status().message();
}

TEST_P(PlanOnDevice, ExpertMajorDefaultBound_IsTheMostThatCanArrive) {
  auto group = group_on(GetParam(), 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory(ops_of(*group.value()));
  const std::vector<TensorView> idx = {
      on_device(memory.copy_of(std::vector<std::byte>(3 * 2 * 8)), DType::kInt64, 3, 2),
      on_device(memory.copy_of(std::vector<std::byte>(5 * 2 * 8)), DType::kInt64, 5, 2)};
  PlanOptions options;
  options.layout = RecvLayout::expert_major(4);
  auto plans = group.value()->plan_on_device(idx, 4, {}, options);  // ids 0: all to expert 0
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  for (const gpu::DevicePlan& plan : plans.value()) {
    EXPECT_EQ(plan.num_recv_rows(), (3 + 5) * 2 + 2 * 3);  // all pairs + 2 experts x 3 padding
  }
  ASSERT_TRUE(group.value()->synchronize().ok());
  const RankResult rank0 = counts_of_device_plan(plans.value()[0], ops_of(*group.value()));
  EXPECT_EQ(rank0.tokens_per_expert, (std::vector<int64_t>{16, 0}));
  EXPECT_EQ(rank0.padded_tokens_per_expert, (std::vector<int64_t>{16, 0}));
  EXPECT_EQ(rank0.dropped_per_expert, (std::vector<int64_t>{0, 0}));
}

}  // namespace
}  // namespace fusco::testing
