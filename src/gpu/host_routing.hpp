#pragma once

// Plans are made on the host: routing that lives on the GPU (the router's topk_idx) is copied
// to the host first. One synchronous copy of T x k ids per plan; the counts it yields size
// every buffer, so a host synchronisation is needed here anyway (DeepEP's normal mode waits
// for its counts the same way).

#include <cstddef>
#include <string>
#include <vector>

#include "fusco/tensor.hpp"
#include "gpu/device_ops.hpp"

namespace fusco::gpu {

/// `topk_idx` itself when it is host memory; else a host view of a copy of its bytes, kept in
/// `storage`. A device view must be a contiguous 2-D int32/int64 tensor (named `arg` in the
/// error); the planner checks everything else. The copy is synchronous and does not wait for
/// the engine's streams: callers first wait for the rank's stream, where the router writes.
inline Result<TensorView> host_routing(const DeviceOps& ops, const TensorView& topk_idx,
                                       std::vector<std::byte>& storage, const std::string& arg) {
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
  FUSCO_RETURN_IF_ERROR(ops.download(storage.data(), topk_idx.data, storage.size(),
                                     "copying " + arg + " to the host for planning"));
  TensorView host = topk_idx;
  host.data = storage.data();
  host.device = Device::kHost;
  return host;
}

}  // namespace fusco::gpu
