#pragma once

// Runs of the one-GPU engine for the GPU tests: a case's inputs copied to the device, planned
// on the host (DeviceGroup::plan) or on the device (plan_on_device), dispatched and combined
// by the fused kernels or the unfused baseline, and every rank's results read back.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "fusco/gpu.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {

// Device copies that free themselves.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
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

inline TensorView on_device(void* data, DType dtype, int64_t rows, int64_t cols,
                            int64_t stride = 0) {
  TensorView view = TensorView::host(data, dtype, {rows, cols});
  view.device = Device::kCuda;
  view.row_stride = stride;
  return view;
}

enum class Engine { kFused, kUnfusedBaseline };
enum class Planning { kHost, kDevice };

/// Rank `rank`'s routing of `c` in device memory (int32 ids when the case says so).
TensorView device_routing(const Case& c, int rank, DeviceMemory& memory);

/// A rank's counts from a plan of either kind; a device-made plan's are read back from the
/// device (call once its planning has ended).
RankResult counts_of_device_plan(const gpu::DevicePlan& plan);

/// The receive rows the blocks of `counts` take (padded_tokens_per_expert summed).
int64_t rows_in_blocks(const RankResult& counts);

/// Plans, dispatches and combines `c` on the group; every rank's result.
std::vector<RankResult> run_on_device(gpu::DeviceGroup& group, const Case& c,
                                      Engine engine = Engine::kFused,
                                      Planning planning = Planning::kHost);

/// run_on_device against the reference, bit for bit.
::testing::AssertionResult device_matches_reference(gpu::DeviceGroup& group, const Case& c,
                                                    Engine engine = Engine::kFused,
                                                    Planning planning = Planning::kHost);

}  // namespace fusco::testing
