#pragma once

// Device-side evaluation of fusco's FUSCO_HOST_DEVICE functions, so a test can compare them
// with the host results (same code, two compilers).

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fusco::testing {

/// For each of the `n` floats in `values` (device memory): its bf16 and fp16 bits.
/// For each rank r < world_size: the rail relay of every node for source r,
/// relays[r * num_nodes + node]. All outputs are device memory.
cudaError_t run_host_device_functions(const float* values, int n, uint16_t* bf16_bits,
                                      uint16_t* fp16_bits, int world_size, int ranks_per_node,
                                      int* relays);

}  // namespace fusco::testing
