// The one-GPU engine (fusco::gpu::DeviceGroup) through its public entry points: W = 1, 2, 4
// and 8 logical ranks on one device, every routing case of the foundation suite and random
// one-node cases, results equal to the reference bit for bit. Skipped without a GPU, except
// the check that creating a group without one says so.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "baseline/unfused_device.hpp"
#include "fusco/gpu.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Device copies that free themselves.
class DeviceMemory {
 public:
  ~DeviceMemory() {
    for (void* p : blocks_) cudaFree(p);
  }
  void* copy_of(const std::vector<std::byte>& host) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(host.size(), 1)), cudaSuccess);
    if (!host.empty()) cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice);
    blocks_.push_back(p);
    return p;
  }
  static std::vector<std::byte> read(const void* p, size_t bytes) {
    std::vector<std::byte> host(bytes);
    if (bytes > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), p, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return host;
  }

 private:
  std::vector<void*> blocks_;
};

TensorView on_device(void* data, DType dtype, int64_t rows, int64_t cols, int64_t stride = 0) {
  TensorView view = TensorView::host(data, dtype, {rows, cols});
  view.device = Device::kCuda;
  view.row_stride = stride;
  return view;
}

enum class Engine { kFused, kUnfusedBaseline };

// Plans, dispatches and combines `c` on the group with `engine`; every rank's result.
std::vector<RankResult> run_on_device(gpu::DeviceGroup& group, const Case& c,
                                      Engine engine = Engine::kFused) {
  const auto world = static_cast<size_t>(c.world);
  std::vector<std::vector<int64_t>> ids(world);
  std::vector<TensorView> idx;
  for (size_t r = 0; r < world; ++r) {
    ids[r] = routing_of(c, static_cast<int>(r));
    idx.push_back(TensorView::host(ids[r].data(), DType::kInt64,
                                   {tokens_of(c, static_cast<int>(r)), c.topk}));
  }
  std::vector<RankResult> results(world);
  Result<std::vector<gpu::DevicePlan>> plans = group.plan(idx, c.experts, map_of(c), options_of(c));
  if (!plans.ok()) {
    for (RankResult& result : results) result.status = plans.status();
    return results;
  }
  DeviceMemory memory;
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  const size_t row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  std::vector<TensorView> x, recv, y, weights, out;
  for (size_t r = 0; r < world; ++r) {
    const int rank = static_cast<int>(r);
    const int64_t tokens = tokens_of(c, rank);
    const int64_t rows = plans.value()[r].host().num_recv_rows();
    results[r] = counts_of(plans.value()[r].host());
    x.push_back(on_device(memory.copy_of(strided(x_of(c, rank), c, tokens)), c.dtype, tokens,
                          c.hidden, pitch));
    recv.push_back(on_device(memory.copy_of(std::vector<std::byte>(
                                 static_cast<size_t>(rows) * row_bytes, std::byte{0x5a})),
                             c.dtype, rows, c.hidden));
    y.push_back(on_device(memory.copy_of(strided(y_of(c, rank, rows), c, rows)), c.dtype, rows,
                          c.hidden, pitch));
    weights.push_back(
        on_device(memory.copy_of(weights_of(c, rank)), DType::kFloat32, tokens, c.topk));
    out.push_back(
        on_device(memory.copy_of(std::vector<std::byte>(static_cast<size_t>(tokens) * row_bytes)),
                  c.dtype, tokens, c.hidden));
  }
  std::vector<TensorView> extra, extra_recv;
  for (size_t r = 0; r < world && c.extra_cols > 0; ++r) {
    const int rank = static_cast<int>(r);
    const int64_t rows = plans.value()[r].host().num_recv_rows();
    extra.push_back(on_device(memory.copy_of(extra_of(c, rank)), DType::kInt32, tokens_of(c, rank),
                              c.extra_cols));
    extra_recv.push_back(
        on_device(memory.copy_of(std::vector<std::byte>(
                      static_cast<size_t>(rows * c.extra_cols) * 4, std::byte{0x5a})),
                  DType::kInt32, rows, c.extra_cols));
  }
  Status status;
  if (engine == Engine::kFused) {
    status = group.dispatch(plans.value(), x, recv, extra, extra_recv);
    if (status.ok() && dtype_supports_combine(c.dtype)) {
      status = group.combine(plans.value(), y, weights, out);
    }
  } else {
    auto baseline =
        baseline::UnfusedDevice::create(group, plans.value(), static_cast<int64_t>(row_bytes));
    status = baseline.status();
    if (status.ok()) status = baseline.value()->dispatch(x, recv);
    if (status.ok() && dtype_supports_combine(c.dtype)) {
      status = baseline.value()->combine(y, weights, out);
    }
    if (status.ok()) status = group.synchronize();  // before the baseline's buffers go
  }
  if (status.ok()) status = group.synchronize();
  for (size_t r = 0; r < world; ++r) {
    results[r].status = status;
    results[r].recv = DeviceMemory::read(recv[r].data, static_cast<size_t>(recv[r].nbytes()));
    if (c.extra_cols > 0) {
      results[r].extra_recv =
          DeviceMemory::read(extra_recv[r].data, static_cast<size_t>(extra_recv[r].nbytes()));
    }
    if (dtype_supports_combine(c.dtype)) {
      results[r].out = DeviceMemory::read(out[r].data, static_cast<size_t>(out[r].nbytes()));
    }
  }
  return results;
}

::testing::AssertionResult device_matches_reference(gpu::DeviceGroup& group, const Case& c,
                                                    Engine engine = Engine::kFused) {
  const std::vector<RankResult> got = run_on_device(group, c, engine);
  const Expected want = expected_of(c);
  for (int r = 0; r < c.world; ++r) {
    ::testing::AssertionResult verdict = matches_expected(c, want, r, got[static_cast<size_t>(r)]);
    if (!verdict) return verdict;
  }
  return ::testing::AssertionSuccess();
}

TEST(DeviceGroup, WorldSizes1248_EveryRoutingCase_MatchesReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int world : {1, 2, 4, 8}) {
    auto group = gpu::DeviceGroup::create(world);
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
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
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

TEST(DeviceGroup, RoutingOnTheDevice_PlansLikeRoutingOnTheHost) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto group = gpu::DeviceGroup::create(2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  DeviceMemory memory;
  std::vector<std::vector<int64_t>> ids = {{0, 3, 1, 1, 2, -1}, {3, 2, -1, -1, 0, 0}};
  std::vector<TensorView> host, device;
  for (std::vector<int64_t>& rank_ids : ids) {
    host.push_back(TensorView::host(rank_ids.data(), DType::kInt64, {3, 2}));
    std::vector<std::byte> bytes(rank_ids.size() * sizeof(int64_t));
    std::memcpy(bytes.data(), rank_ids.data(), bytes.size());
    device.push_back(on_device(memory.copy_of(bytes), DType::kInt64, 3, 2));
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

TEST(DeviceGroup, RepeatedRuns_AreBitIdentical) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto group = gpu::DeviceGroup::create(4);
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

TEST(DeviceGroup, HostMemoryOrAForeignPlan_IsAClearError) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto group = gpu::DeviceGroup::create(2);
  auto other = gpu::DeviceGroup::create(2);
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
