#pragma once

// Plans are made on the host: routing that lives on the GPU (the router's topk_idx) is copied
// to the host first. One synchronous copy of T x k ids per plan; the counts it yields size
// every buffer, so a host synchronisation is needed here anyway (DeepEP's normal mode waits
// for its counts the same way).

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <vector>

#include "fusco/tensor.hpp"
#include "gpu/cuda_status.hpp"

namespace fusco::gpu {

/// `topk_idx` itself when it is host memory; else a host view of a copy of its bytes, kept in
/// `storage`. A device view must be a contiguous 2-D int32/int64 tensor (named `arg` in the
/// error); the planner checks everything else.
inline Result<TensorView> host_routing(const TensorView& topk_idx, std::vector<std::byte>& storage,
                                       const std::string& arg) {
  if (topk_idx.device != Device::kCuda) {
    return topk_idx;
  }
  if (topk_idx.ndim != 2 || (topk_idx.dtype != DType::kInt32 && topk_idx.dtype != DType::kInt64) ||
      (topk_idx.row_stride != 0 && topk_idx.row_stride != topk_idx.shape[1]) ||
      topk_idx.shape[0] < 0 || topk_idx.shape[1] < 0) {
    return Status(StatusCode::kInvalidArgument,
                  arg + " is " + topk_idx.describe() +
                      " but must be a contiguous 2-D int32 or int64 tensor [T, k]");
  }
  storage.resize(static_cast<size_t>(topk_idx.nbytes()));
  if (!storage.empty()) {
    FUSCO_RETURN_IF_ERROR(cuda_status(
        cudaMemcpy(storage.data(), topk_idx.data, storage.size(), cudaMemcpyDeviceToHost),
        "copying " + arg + " to the host for planning"));
  }
  TensorView host = topk_idx;
  host.data = storage.data();
  host.device = Device::kHost;
  return host;
}

}  // namespace fusco::gpu
