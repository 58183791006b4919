#pragma once

// Torch-free launcher of the layout on the GPU: from topk_idx, the rows of every physical
// expert and the receive-order position of every (token, slot) pair, in the order of
// core::build_layout (expert, token, slot). Asynchronous on `stream`: the data movement can
// be launched after it without a host synchronisation.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/planning_args.hpp"

namespace fusco::kernels {

using LayoutArgs = core::LayoutArgs;

/// Device scratch memory launch_layout needs for these sizes.
size_t layout_workspace_bytes(int64_t num_tokens, int64_t num_physical);

/// Enqueues the layout on `stream`. Returns the launch error (cudaErrorInvalidValue for a
/// workspace that is too small or sizes out of range).
cudaError_t launch_layout(const LayoutArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
