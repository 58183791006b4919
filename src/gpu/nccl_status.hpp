#pragma once

// NCCL results as fusco statuses.

#include <nccl.h>

#include <string>

#include "fusco/status.hpp"

namespace fusco::gpu {

/// Success, or the error of `what` with NCCL's text and its last error message: kUnsupported
/// for an argument or a use NCCL refuses (nothing was started), kInternal otherwise.
inline Status nccl_status(ncclResult_t result, const std::string& what) {
  if (result == ncclSuccess) {
    return Status();
  }
  const StatusCode code = result == ncclInvalidArgument || result == ncclInvalidUsage
                              ? StatusCode::kUnsupported
                              : StatusCode::kInternal;
  const char* detail = ncclGetLastError(nullptr);
  return Status(code, what + ": " + ncclGetErrorString(result) +
                          (detail != nullptr && detail[0] != '\0' ? std::string(" (") + detail + ")"
                                                                  : std::string()));
}

}  // namespace fusco::gpu
