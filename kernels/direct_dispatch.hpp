#pragma once

// Torch-free launcher of the direct dispatch kernel: every row of x (and of a companion
// tensor) goes straight to its final expert-major place in a peer's receive buffer (one GPU's
// logical ranks, or NVLink peers through NCCL LSA pointers), one warp per row, with no staging
// and no re-sort.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/direct_steps.hpp"

namespace fusco::kernels {

struct DirectDispatchArgs {
  const void* x = nullptr;  ///< [T, row_bytes] device memory, rows `x_pitch` bytes apart.
  int64_t x_pitch = 0;
  int64_t row_bytes = 0;
  const core::DirectStore* stores = nullptr;  ///< [num_stores] device memory.
  int64_t num_stores = 0;
  core::PeerTable recv{};  ///< Every rank's receive buffer.
  /// Optional companion rows (fp8 scales, token ids): extra[token] goes to the same row of
  /// the destination's `extra_recv` buffer. extra_row_bytes 0: none.
  const void* extra = nullptr;
  int64_t extra_pitch = 0;
  int64_t extra_row_bytes = 0;
  core::PeerTable extra_recv{};
};

/// Enqueues the stores on `stream`; returns the launch error (cudaSuccess when none).
cudaError_t launch_direct_dispatch(const DirectDispatchArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
