#pragma once

// Torch-free launchers of planning on the GPU for ranks of one node under a capacity or an
// expert-major layout (core/device_plan_steps.hpp): after every rank's layout (launch_layout) has
// written its expert_begin row into the group's count matrix and the ranks have passed a barrier,
// one rank's launch_device_planning turns the matrix and its layout into the stores of its
// dispatch, the terms of its combine and its experts' row counts, asynchronously on a stream.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/device_plan_steps.hpp"

namespace fusco::kernels {

struct DevicePlanningArgs {
  core::GroupCounts group;  ///< The count matrix (every rank's layout written) and the map.
  int rank = 0;
  const void* topk_idx = nullptr;  ///< [T, k] int32 or int64, device memory.
  bool ids_int64 = false;
  int64_t num_tokens = 0;
  int64_t topk = 0;
  int64_t num_experts = 0;                ///< Logical experts E.
  const int64_t* physical = nullptr;      ///< [E] physical expert of each logical one.
  const int64_t* positions = nullptr;     ///< [T * k] this rank's layout positions.
  int64_t* first_row = nullptr;           ///< [P] out: this rank's first row of each expert.
  int64_t* limit = nullptr;               ///< [P] out: the row limit of each expert.
  core::DirectStore* stores = nullptr;    ///< [T * k] out: one per (token, slot).
  int64_t* token_group_begin = nullptr;   ///< [T + 1] out: token t is group t.
  int64_t* group_term_begin = nullptr;    ///< [T + 1] out: token t's terms.
  core::DirectTerm* terms = nullptr;      ///< [T * k] out: the first group_term_begin[T].
  int64_t* tokens_per_expert = nullptr;   ///< [local experts] out: rows kept.
  int64_t* dropped_per_expert = nullptr;  ///< [local experts] out: rows without room.
  int64_t* padded_per_expert = nullptr;   ///< [local experts] out: rows of each block.
  int64_t* unfilled = nullptr;  ///< [local experts][2] out: each block's rows left unfilled.
  void* workspace = nullptr;    ///< device_planning_workspace_bytes() bytes of device memory.
  size_t workspace_bytes = 0;
};

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
