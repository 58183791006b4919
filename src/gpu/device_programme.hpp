#pragma once

// A one-node plan's programme in device memory: the stores dispatch makes and the terms
// combine sums, as the direct kernels read them (uploaded once per plan, reused by every
// call).

#include <cuda_runtime_api.h>

#include <string>

#include "fusco/plan.hpp"
#include "gpu/device_buffer.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

struct DeviceProgramme {
  DeviceBuffer stores;             ///< core::DirectStore per row this rank sends.
  DeviceBuffer token_group_begin;  ///< int64 [T + 1]
  DeviceBuffer group_term_begin;   ///< int64 [G + 1]
  DeviceBuffer terms;              ///< core::DirectTerm [N]

  /// The programme of `plan`, which must store every row directly (one node); a plan with
  /// staged rows (ranks on several nodes) is kUnsupported: the GPU engine's inter-node path
  /// (GIN) is not built yet.
  static Result<DeviceProgramme> upload(const detail::PlanData& plan);
};

/// Zeroes `plan`'s padding rows of `rows` (rows of `row_bytes`, contiguous) on `stream`; the
/// receive buffers of every GPU path (x rows and companion rows alike). Nothing for 0 bytes.
Status zero_padding_rows(const detail::PlanData& plan, void* rows, int64_t row_bytes,
                         cudaStream_t stream, const std::string& what);

}  // namespace fusco::gpu
