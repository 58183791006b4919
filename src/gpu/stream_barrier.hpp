#pragma once

// Ordering between the streams of one GPU's logical ranks: every stream waits for the work
// enqueued on every other stream so far (the one-GPU form of the LSA barrier that orders
// stores into peers' buffers). Used by DeviceGroup and the unfused GPU baseline.

#include <cuda_runtime_api.h>

#include <vector>

#include "gpu/device_ops.hpp"

namespace fusco::gpu {

/// events[r] is recorded on streams[r], then every stream waits for every other's event.
inline Status stream_barrier(const DeviceOps& ops, const std::vector<cudaStream_t>& streams,
                             const std::vector<cudaEvent_t>& events, const char* what) {
  for (size_t r = 0; r < streams.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(ops.record(events[r], streams[r], what));
  }
  for (size_t r = 0; r < streams.size(); ++r) {
    for (size_t s = 0; s < streams.size(); ++s) {
      if (s != r) {
        FUSCO_RETURN_IF_ERROR(ops.wait(streams[r], events[s], what));
      }
    }
  }
  return Status();
}

}  // namespace fusco::gpu
