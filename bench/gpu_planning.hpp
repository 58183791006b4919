#pragma once

// fusco_bench -t gpu, planning from routing that lives on the GPU (where a router leaves it):
// DeviceGroup::plan (copy to the host, CPU planner, upload) against plan_on_device (kernels,
// no host synchronisation) under one capacity layout (capacity factor 1.25: rows per expert
// 1.25 times the mean), then dispatch and combine through the plans of both, side by side in
// one run: their results must agree bit for bit.

#include <cstdint>
#include <vector>

#include "bench_args.hpp"
#include "fusco/gpu.hpp"

namespace fusco::bench {

struct GpuPlanning {
  double host_plan_us = 0;    // DeviceGroup::plan of every rank from device routing
  double device_plan_us = 0;  // DeviceGroup::plan_on_device of every rank, until its work ends
  int64_t capacity = 0;       // rows per expert
  int64_t dropped = 0;        // rows past the capacity, all ranks
  double dispatch_us = 0, combine_us = 0;  // with the device-made plans
  int64_t wrong = 0;  // elements where the two plans' dispatch or combine results differ
};

/// Measures planning both ways for `idx` (device routing [T_r, k] of every rank; `rows` rows
/// in all), then dispatches `x` and combines with `w` (combine dtypes) through both plans.
Result<GpuPlanning> measure_device_planning(gpu::DeviceGroup& group, const BenchArgs& args,
                                            const std::vector<TensorView>& idx, int64_t rows,
                                            const std::vector<TensorView>& x,
                                            const std::vector<TensorView>& w, bool combines);

}  // namespace fusco::bench
