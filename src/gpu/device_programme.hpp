#pragma once

// A one-node plan's programme in device memory: the stores dispatch makes and the terms
// combine sums, as the direct kernels read them (uploaded once per plan, reused by every
// call).

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "core/direct_steps.hpp"
#include "fusco/plan.hpp"
#include "gpu/device_buffer.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

struct DeviceProgramme {
  DeviceBuffer storage;  ///< One allocation holding the arrays.
  /// Per row this rank sends: the plan's rows (sorted by destination) rotated to start at
  /// the ranks after this one, so that the ranks' first stores spread over the node's links.
  core::DirectStore* stores = nullptr;
  int64_t* token_group_begin = nullptr;  ///< [T + 1]
  int64_t* group_term_begin = nullptr;   ///< [G + 1]
  core::DirectTerm* terms = nullptr;     ///< [N]
  /// The receive rows dispatch zeroes (the plan's padding), for one zeroing kernel.
  RowRanges padding;

  /// How many of each a programme holds.
  struct Sizes {
    int64_t stores = 0;
    int64_t tokens = 0;
    int64_t groups = 0;
    int64_t terms = 0;
  };
  /// Room for `sizes` (no padding ranges: plans made on the device zero their own).
  static Result<DeviceProgramme> allocate(const Sizes& sizes, const DeviceOps& ops);
  /// The programme of `plan` with its combine terms given (the plan's own, or for a plan with
  /// staged rows terms whose return-buffer rank is translated to a table entry,
  /// gpu/staged_programme.hpp). upload_rank_plan (device_plan_impl.hpp) chooses.
  static Result<DeviceProgramme> upload(const detail::PlanData& plan,
                                        const std::vector<core::DirectTerm>& terms,
                                        const DeviceOps& ops);
};

}  // namespace fusco::gpu
