// FUSCO_HOST_DEVICE functions give the same results on the GPU as on the host; skipped where
// no GPU is present (the device code still compiles everywhere CUDA is found).

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/convert.hpp"
#include "fusco/topology.hpp"
#include "gpu/gpu_presence.hpp"
#include "gpu/host_device_kernels.hpp"

namespace fusco::testing {
namespace {

template <typename T>
T* device_array(size_t count) {
  void* memory = nullptr;
  return cudaMalloc(&memory, count * sizeof(T)) == cudaSuccess ? static_cast<T*>(memory) : nullptr;
}

TEST(GpuHostDevice, ConversionsAndRelaysMatchTheHost) {
  FUSCO_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  std::vector<float> values = {
      0.0f, -0.0f, 1.0f, 65520.0f, 1e-8f, 3.0e38f, std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 10000; ++i) {
    values.push_back(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng),
                                std::uniform_int_distribution<int>(-30, 30)(rng)));
  }
  const int n = static_cast<int>(values.size());
  constexpr int kWorld = 11;
  constexpr int kPerNode = 4;
  const int nodes = Topology{kWorld, kPerNode}.num_nodes();
  float* d_values = device_array<float>(values.size());
  uint16_t* d_bf16 = device_array<uint16_t>(values.size());
  uint16_t* d_fp16 = device_array<uint16_t>(values.size());
  int* d_relays = device_array<int>(static_cast<size_t>(kWorld * nodes));
  ASSERT_TRUE(d_values && d_bf16 && d_fp16 && d_relays);
  cudaMemcpy(d_values, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice);
  ASSERT_EQ(run_host_device_functions(d_values, n, d_bf16, d_fp16, kWorld, kPerNode, d_relays),
            cudaSuccess);
  std::vector<uint16_t> bf16(values.size()), fp16(values.size());
  std::vector<int> relays(static_cast<size_t>(kWorld * nodes));
  cudaMemcpy(bf16.data(), d_bf16, bf16.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost);
  cudaMemcpy(fp16.data(), d_fp16, fp16.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost);
  cudaMemcpy(relays.data(), d_relays, relays.size() * sizeof(int), cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(bf16[i], core::float_to_bf16(values[i])) << values[i];
    ASSERT_EQ(fp16[i], core::float_to_fp16(values[i])) << values[i];
  }
  const Topology topo{kWorld, kPerNode};
  for (int r = 0; r < kWorld; ++r) {
    for (int node = 0; node < nodes; ++node) {
      EXPECT_EQ(relays[static_cast<size_t>(r * nodes + node)], topo.rail_relay(node, r));
    }
  }
  cudaFree(d_values);
  cudaFree(d_bf16);
  cudaFree(d_fp16);
  cudaFree(d_relays);
}

}  // namespace
}  // namespace fusco::testing
