#pragma once

// Runs of the one-GPU engine for the GPU tests: a case's inputs copied to the device, planned
// on the host (DeviceGroup::plan) or on the device (plan_on_device), dispatched and combined
// by the fused kernels or the unfused baseline, and every rank's results read back.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "fusco/gpu.hpp"
#include "gpu/device_ops.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {

// The backend of a group's device memory: CUDA, or the host backend (create_on_host).
inline const gpu::DeviceOps& ops_of(const gpu::DeviceGroup& group) {
  return group.on_host() ? gpu::host_ops() : gpu::cuda_ops();
}

// Device copies that free themselves, in a backend's device memory (CUDA unless told).
class DeviceMemory {
 public:
  explicit DeviceMemory(const gpu::DeviceOps& ops = gpu::cuda_ops()) : ops_(&ops) {}
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() {
    for (void* p : blocks_) ops_->release(p);
  }
  void* copy_of(const std::vector<std::byte>& host) {
    void* p = nullptr;
    EXPECT_TRUE(ops_->allocate(&p, std::max<size_t>(host.size(), 1), "test memory").ok());
    EXPECT_TRUE(ops_->upload(p, host.data(), host.size(), "test input").ok());
    blocks_.push_back(p);
    return p;
  }
  /// A copy of `host` written on `stream` (as a producer kernel on the rank's stream would
  /// write it): until the stream runs, the memory holds other bytes.
  void* written_on(cudaStream_t stream, const std::vector<std::byte>& host) {
    void* staging = copy_of(host);
    void* p = copy_of(std::vector<std::byte>(host.size(), std::byte{0xa5}));
    EXPECT_TRUE(ops_->copy(p, staging, host.size(), stream, "test input").ok());
    return p;
  }
  /// `bytes` at `p` as work on `stream` sees them (copied on it, then only it waited for, as
  /// a consumer kernel on the rank's stream would read them).
  std::vector<std::byte> read_on(cudaStream_t stream, const void* p, size_t bytes) {
    void* staging = copy_of(std::vector<std::byte>(bytes));
    EXPECT_TRUE(ops_->copy(staging, p, bytes, stream, "test result").ok());
    EXPECT_TRUE(ops_->synchronize(stream, "test result").ok());
    return read(staging, bytes, *ops_);
  }
  static std::vector<std::byte> read(const void* p, size_t bytes,
                                     const gpu::DeviceOps& ops = gpu::cuda_ops()) {
    std::vector<std::byte> host(bytes);
    EXPECT_TRUE(ops.download(host.data(), p, bytes, "test result").ok());
    return host;
  }

 private:
  const gpu::DeviceOps* ops_;
  std::vector<void*> blocks_;
};

inline TensorView on_device(void* data, DType dtype, int64_t rows, int64_t cols,
                            int64_t stride = 0) {
  TensorView view = TensorView::host(data, dtype, {rows, cols});
  view.device = Device::kCuda;
  view.row_stride = stride;
  return view;
}

enum class Backend { kHost, kCuda };

/// A DeviceGroup on `backend` (CUDA: device 0).
inline Result<std::unique_ptr<gpu::DeviceGroup>> group_on(Backend backend, int world,
                                                          int ranks_per_node = 0) {
  return backend == Backend::kHost ? gpu::DeviceGroup::create_on_host(world, ranks_per_node)
                                   : gpu::DeviceGroup::create(world, 0, ranks_per_node);
}

/// Tests of DeviceGroup that run on every backend: the host backend everywhere, CUDA where
/// there is a GPU (skipped otherwise). GetParam(): the backend.
class OnEveryBackend : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kCuda) FUSCO_SKIP_WITHOUT_GPU();
  }
};

/// How GoogleTest prints a backend parameter.
inline void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kHost ? "host" : "cuda");
}

/// The test name suffix of a backend: Host or Cuda.
inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kHost ? "Host" : "Cuda";
}

/// Instantiates the OnEveryBackend suite `suite` for both backends.
#define FUSCO_ON_EVERY_BACKEND(suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(Backends, suite, ::testing::Values(Backend::kHost, Backend::kCuda), \
                           backend_name)

enum class Engine { kFused, kUnfusedBaseline };
enum class Planning { kHost, kDevice };

/// Rank `rank`'s routing of `c` in device memory (int32 ids when the case says so).
TensorView device_routing(const Case& c, int rank, DeviceMemory& memory,
                          cudaStream_t stream = nullptr);

/// A rank's counts from a plan of either kind; a device-made plan's are read back from the
/// device (call once its planning has ended).
RankResult counts_of_device_plan(const gpu::DevicePlan& plan, const gpu::DeviceOps& ops);

/// The receive rows the blocks of `counts` take (padded_tokens_per_expert summed).
int64_t rows_in_blocks(const RankResult& counts);

/// The order in which a run reads the ranks' results.
enum class ReadOrder { kAscending, kDescending };

/// Plans, dispatches and combines `c` on the group; every rank's result.
std::vector<RankResult> run_on_device(gpu::DeviceGroup& group, const Case& c,
                                      Engine engine = Engine::kFused,
                                      Planning planning = Planning::kHost,
                                      ReadOrder order = ReadOrder::kAscending);

/// run_on_device against the reference, bit for bit.
::testing::AssertionResult device_matches_reference(gpu::DeviceGroup& group, const Case& c,
                                                    Engine engine = Engine::kFused,
                                                    Planning planning = Planning::kHost);

}  // namespace fusco::testing
