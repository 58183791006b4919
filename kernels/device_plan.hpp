#pragma once

// Torch-free launchers of planning on the GPU for ranks of one node under a capacity or an
// expert-major layout (core/device_plan_steps.hpp): after every rank's layout (launch_layout) has
// written its expert_begin row into the group's count matrix and the ranks have passed a barrier,
// one rank's launch_device_planning turns the matrix and its layout into the stores of its
// dispatch, the terms of its combine and its experts' row counts, asynchronously on a stream.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/planning_args.hpp"

namespace fusco::kernels {

using DevicePlanningArgs = core::DevicePlanningArgs;

/// Device scratch memory launch_device_planning needs for `num_tokens` tokens.
size_t device_planning_workspace_bytes(int64_t num_tokens);

/// Enqueues one rank's planning on `stream`; returns the launch error (cudaErrorInvalidValue
/// for a workspace that is too small or sizes out of range).
cudaError_t launch_device_planning(const DevicePlanningArgs& args, cudaStream_t stream);

/// Zeroes the unfilled rows of every local expert's block: rows [unfilled[2s],
/// unfilled[2s + 1]) of `rows` (rows of `row_bytes`, contiguous) for local expert s, each range
/// at most `max_rows` rows (the capacity, or the alignment).
cudaError_t launch_zero_unfilled_rows(void* rows, int64_t row_bytes, const int64_t* unfilled,
                                      int64_t local_experts, int64_t max_rows, cudaStream_t stream);

/// Copies `count` int64 values from `row` to `offset_bytes` into every rank's buffer of
/// `peers` (ranks [0, world); the one `row` already lies in is skipped): a rank's row of the
/// count matrix published into every rank's matrix through LSA pointers.
cudaError_t launch_publish_row(const int64_t* row, int64_t count, const core::PeerTable& peers,
                               int world, int64_t offset_bytes, cudaStream_t stream);

/// Copies the id of the first bad pair (`first_bad`, from launch_layout; INT64_MAX for none)
/// to bad[0] = pair, bad[1] = its id (bad[0] = -1 without one): what a routing check reads.
cudaError_t launch_record_bad_id(const void* topk_idx, bool ids_int64, const int64_t* first_bad,
                                 int64_t* bad, cudaStream_t stream);

}  // namespace fusco::kernels
