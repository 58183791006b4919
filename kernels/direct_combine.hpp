#pragma once

// Torch-free launcher of the direct combine kernel: every output row is the weighted sum of
// its terms, read straight from the expert outputs of the node's ranks (one GPU's logical
// ranks, or NVLink peers through NCCL LSA pointers), in the plan's fixed order
// (core/reduce_steps.hpp), so the bits equal the CPU engine's.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/direct_steps.hpp"

namespace fusco::kernels {

struct DirectCombineArgs {
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  int32_t row_type = 0;  ///< core::RowType: 0 fp32, 1 fp16, 2 bf16.
  int64_t topk = 0;
  /// [T + 1]: token t's groups are [token_group_begin[t], token_group_begin[t + 1]).
  const int64_t* token_group_begin = nullptr;
  /// [G + 1]: group g's terms are [group_term_begin[g], group_term_begin[g + 1]).
  const int64_t* group_term_begin = nullptr;
  const core::DirectTerm* terms = nullptr;  ///< [N] device memory.
  const float* topk_weights = nullptr;      ///< [T, topk] fp32 device memory.
  /// Optional [num_tokens]: output row t takes its weights from topk_weights row
  /// weight_rows[t] (a relay's return rows: the source's token of each entry); none: row t.
  const int32_t* weight_rows = nullptr;
  core::PeerTable expert_out{};  ///< Every rank's expert output.
  void* out = nullptr;           ///< [T, hidden] contiguous; tokens without a term get zeros.
};

/// Enqueues the reduction on `stream`; returns the launch error.
cudaError_t launch_direct_combine(const DirectCombineArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
