#pragma once

// CUDA runtime errors as fusco statuses.

#include <cuda_runtime_api.h>

#include <string>

#include "fusco/status.hpp"

namespace fusco::gpu {

/// Success, or the error of `what` with CUDA's name and text for it (kOutOfMemory for a
/// failed allocation, kUnsupported where no usable device or driver is present).
inline Status cuda_status(cudaError_t error, const std::string& what) {
  if (error == cudaSuccess) {
    return Status();
  }
  StatusCode code = StatusCode::kInternal;
  if (error == cudaErrorMemoryAllocation) {
    code = StatusCode::kOutOfMemory;
  } else if (error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver ||
             error == cudaErrorInvalidDevice) {
    code = StatusCode::kUnsupported;
  }
  return Status(code,
                what + ": " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")");
}

}  // namespace fusco::gpu
