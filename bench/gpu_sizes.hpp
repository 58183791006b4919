#pragma once

// fusco_bench -t gpu: one size of the sweep on one GPU. W logical ranks
// (fusco::gpu::DeviceGroup), the rows fed back as expert outputs (identity experts), measured
// side by side with CUDA events, medians over the iterations: a device-to-device copy of the
// delivered bytes (the bound), fused dispatch and combine, the unfused GPU pipeline; then
// planning from routing on the GPU on the host and on the device (gpu_planning.hpp).

#include <cstdint>
#include <string>

#include "bench_args.hpp"
#include "fusco/status.hpp"
#include "gpu_planning.hpp"

namespace fusco::bench {

struct GpuSize {
  double recv_rows = 0;  // mean per rank
  double plan_us = 0;    // host planning of all ranks + upload
  double copy_us = 0, dispatch_us = 0, combine_us = 0;
  double base_dispatch_us = 0, base_combine_us = 0;
  double delivered_bytes = 0;  // all ranks
  int64_t wrong = 0;           // elements differing from the reference (and fused vs unfused)
  std::string device;          // the GPU's name
  GpuPlanning planning;        // planning from routing on the GPU, both ways
};

/// Runs one size; kUnsupported without a CUDA device.
Result<GpuSize> run_gpu_size(const BenchArgs& args, int64_t tokens);

}  // namespace fusco::bench
