#pragma once

// Torch-free launcher of the layout on the GPU: from topk_idx, the rows of every physical
// expert and the receive-order position of every (token, slot) pair, in the order of
// core::build_layout (expert, token, slot). Asynchronous on `stream`: the data movement can
// be launched after it without a host synchronisation.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace fusco::kernels {

struct LayoutArgs {
  const void* topk_idx = nullptr;  ///< [T, k] int32 or int64, device memory.
  bool ids_int64 = false;
  int64_t num_tokens = 0;
  int topk = 0;
  int64_t num_experts = 0;            ///< Logical experts E.
  const int64_t* physical = nullptr;  ///< [E] physical expert of each logical one, device.
  int64_t num_physical = 0;           ///< P.
  int64_t* positions = nullptr;       ///< [T * k] out: row in expert order, -1 unused slot.
  int64_t* expert_begin = nullptr;    ///< [P + 1] out: first row of each expert; [P] = rows.
  /// [1] out: the first pair (token * k + slot) whose id is outside [-1, E), or INT64_MAX.
  int64_t* first_bad = nullptr;
  void* workspace = nullptr;  ///< layout_workspace_bytes() bytes of device memory.
  size_t workspace_bytes = 0;
};

/// Device scratch memory launch_layout needs for these sizes.
size_t layout_workspace_bytes(int64_t num_tokens, int64_t num_physical);

/// Enqueues the layout on `stream`. Returns the launch error (cudaErrorInvalidValue for a
/// workspace that is too small or sizes out of range).
cudaError_t launch_layout(const LayoutArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
