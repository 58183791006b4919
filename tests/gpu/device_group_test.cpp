// The one-GPU engine (fusco::gpu::DeviceGroup) through its public entry points: W = 1, 2, 4
// and 8 logical ranks on one device, every routing case of the foundation suite and random
// one-node cases, results equal to the reference bit for bit. The DeviceGroupRuns tests run
// on the host backend everywhere and on CUDA where there is a GPU; the others need a GPU,
// except the check that creating a group without one says so.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "fusco/gpu.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

using DeviceGroupRuns = OnEveryBackend;
FUSCO_ON_EVERY_BACKEND(DeviceGroupRuns);

TEST_P(DeviceGroupRuns, WorldSizes1248_EveryRoutingCase_MatchesReference) {
  for (int world : {1, 2, 4, 8}) {
    auto group = group_on(GetParam(), world);
    ASSERT_TRUE(group.ok()) << group.status().to_string();
    int index = 0;
    for (const Case& c : one_node_cases(world)) {
      EXPECT_TRUE(device_matches_reference(*group.value(), c))
          << "world " << world << " case " << index;
      ++index;
    }
  }
}

TEST(UnfusedDevice, WorldSizes1248_EveryRoutingCase_MatchesReference) {
  FUSCO_SKIP_WITHOUT_GPU();
  for (int world : {1, 2, 4, 8}) {
    auto group = gpu::DeviceGroup::create(world);
    ASSERT_TRUE(group.ok()) << group.status().to_string();
    int index = 0;
    for (Case c : one_node_cases(world)) {
      c.stride_pad = 0;  // the baseline's permute reads contiguous rows
      c.extra_cols = 0;  // and moves no companion tensor
      EXPECT_TRUE(device_matches_reference(*group.value(), c, Engine::kUnfusedBaseline))
          << "world " << world << " case " << index;
      ++index;
    }
  }
}

TEST_P(DeviceGroupRuns, RoutingOnTheDevice_WrittenOnTheRanksStreams_PlansLikeRoutingOnTheHost) {
  auto group = group_on(GetParam(), 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory(ops_of(*group.value()));
  std::vector<std::vector<int64_t>> ids = {{0, 3, 1, 1, 2, -1}, {3, 2, -1, -1, 0, 0}};
  std::vector<TensorView> host, device;
  for (std::vector<int64_t>& rank_ids : ids) {
    host.push_back(TensorView::host(rank_ids.data(), DType::kInt64, {3, 2}));
    std::vector<std::byte> bytes(rank_ids.size() * sizeof(int64_t));
    std::memcpy(bytes.data(), rank_ids.data(), bytes.size());
    // As the router kernel would write it: on the rank's stream, which plan() must wait for.
    const int rank = static_cast<int>(device.size());
    device.push_back(
        on_device(memory.written_on(group.value()->stream(rank), bytes), DType::kInt64, 3, 2));
  }
  auto from_host = group.value()->plan(host, 4);
  auto from_device = group.value()->plan(device, 4);
  ASSERT_TRUE(from_host.ok() && from_device.ok()) << from_device.status().to_string();
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(from_device.value()[r].host().tokens_per_expert(),
              from_host.value()[r].host().tokens_per_expert());
    EXPECT_EQ(from_device.value()[r].host().slot_ranks(), from_host.value()[r].host().slot_ranks());
  }
}

TEST_P(DeviceGroupRuns, RepeatedRuns_AreBitIdentical) {
  auto group = group_on(GetParam(), 4);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  Case c;
  c.world = 4;
  c.ranks_per_node = 4;
  c.experts = 16;
  c.hidden = 4096;
  const std::vector<RankResult> first = run_on_device(*group.value(), c);
  for (int run = 0; run < 3; ++run) {
    const std::vector<RankResult> again = run_on_device(*group.value(), c);
    for (size_t r = 0; r < first.size(); ++r) {
      EXPECT_EQ(again[r].recv, first[r].recv);
      EXPECT_EQ(again[r].out, first[r].out);
    }
  }
}

TEST_P(DeviceGroupRuns, HostMemoryOrAForeignPlan_IsAClearError) {
  auto group = group_on(GetParam(), 2);
  auto other = group_on(GetParam(), 2);
  ASSERT_TRUE(group.ok() && other.ok());
  std::vector<int64_t> ids = {0, 1, 1, 0};
  const std::vector<TensorView> idx(2, TensorView::host(ids.data(), DType::kInt64, {2, 2}));
  auto plans = group.value()->plan(idx, 2);
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  std::vector<float> host_x(2 * 4);
  const std::vector<TensorView> x(2, TensorView::host(host_x.data(), DType::kFloat32, {2, 4}));
  const Status status = group.value()->dispatch(plans.value(), x, x);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("x[0] must be CUDA device memory"), std::string::npos)
      << status.message();
  const Status foreign = other.value()->dispatch(plans.value(), x, x);
  EXPECT_EQ(foreign.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(foreign.message().find("plans[0]"), std::string::npos) << foreign.message();
}

TEST(DeviceGroup, WithoutAGpu_CreateSaysSo) {
  if (have_gpu()) GTEST_SKIP() << "a CUDA device is present";
  auto group = gpu::DeviceGroup::create(2);
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), StatusCode::kUnsupported) << group.status().to_string();
  EXPECT_NE(group.status().message().find("cudaGetDeviceCount"), std::string::npos);
}

TEST(DeviceGroup, WorldSizeOutOfRange_NamesTheLimit) {
  auto group = gpu::DeviceGroup::create(73);
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(group.status().message().find("world_size = 73 is outside [1, 72]"), std::string::npos)
      << group.status().message();
}

}  // namespace
}  // namespace fusco::testing
