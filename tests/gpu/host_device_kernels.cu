#include "core/convert.hpp"
#include "fusco/topology.hpp"
#include "gpu/host_device_kernels.hpp"

namespace fusco::testing {

namespace {

__global__ void convert_kernel(const float* values, int n, uint16_t* bf16_bits,
                               uint16_t* fp16_bits) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    bf16_bits[i] = core::float_to_bf16(values[i]);
    fp16_bits[i] = core::float_to_fp16(values[i]);
  }
}

__global__ void relay_kernel(Topology topology, int* relays) {
  const int source = threadIdx.x;
  if (source < topology.world_size) {
    for (int node = 0; node < topology.num_nodes(); ++node) {
      relays[source * topology.num_nodes() + node] = topology.rail_relay(node, source);
    }
  }
}

}  // namespace

cudaError_t run_host_device_functions(const float* values, int n, uint16_t* bf16_bits,
                                      uint16_t* fp16_bits, int world_size, int ranks_per_node,
                                      int* relays) {
  convert_kernel<<<(n + 255) / 256, 256>>>(values, n, bf16_bits, fp16_bits);
  relay_kernel<<<1, 1024>>>(Topology{world_size, ranks_per_node}, relays);
  cudaError_t status = cudaGetLastError();
  return status == cudaSuccess ? cudaDeviceSynchronize() : status;
}

}  // namespace fusco::testing
