#pragma once

// Torch-free launcher of combine's final reduction on the GPU: every output row is the
// weighted sum of its terms in the plan's fixed order (core/reduce_steps.hpp), so the bits
// equal the CPU engine's. Raw pointers and a cudaStream_t only.

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fusco::kernels {

struct CombineReduceArgs {
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  int32_t row_type = 0;  ///< core::RowType: 0 fp32, 1 fp16, 2 bf16.
  /// [T + 1]: token t's groups are [token_group_begin[t], token_group_begin[t + 1]).
  const int64_t* token_group_begin = nullptr;
  /// [G + 1]: group g's terms are [group_term_begin[g], group_term_begin[g + 1]).
  const int64_t* group_term_begin = nullptr;
  const void* const* term_rows = nullptr;  ///< [N] device pointers to rows of `hidden`.
  const float* term_weights = nullptr;     ///< [N]
  void* out = nullptr;                     ///< [T, hidden] of row_type; tokens without a group: 0.
};

/// Enqueues the reduction on `stream`; returns the launch error.
cudaError_t launch_combine_reduce(const CombineReduceArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
