#pragma once

// Whether this machine has a CUDA device, and the one skip every GPU test takes without one.
// Under FUSCO_REQUIRE_GPU=1 (scripts/gpu-check.sh sets it on the GPU machine) a missing device
// fails the test instead: a driver/runtime mismatch must not look like a green run of skips.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace fusco::testing {

/// The number of CUDA devices (0 when CUDA finds none or no usable driver).
inline int cuda_devices() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

inline bool have_gpu() { return cuda_devices() > 0; }

/// Why there is no device, in CUDA's words (e.g. "cudaGetDeviceCount:
/// cudaErrorInsufficientDriver").
inline std::string no_gpu_reason() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorName(error) + " (" +
           cudaGetErrorString(error) + ")";
  }
  return "cudaGetDeviceCount found " + std::to_string(count) + " devices";
}

/// FUSCO_REQUIRE_GPU=1: the run is on a GPU machine, so no device is a failure.
inline bool gpu_required() {
  const char* value = std::getenv("FUSCO_REQUIRE_GPU");
  return value != nullptr && std::strcmp(value, "1") == 0;
}

}  // namespace fusco::testing

/// First line of a test that needs a CUDA device: skips without one, or fails under
/// FUSCO_REQUIRE_GPU=1.
#define FUSCO_SKIP_WITHOUT_GPU()                                                      \
  do {                                                                                \
    if (!::fusco::testing::have_gpu()) {                                              \
      if (::fusco::testing::gpu_required()) {                                         \
        FAIL() << "FUSCO_REQUIRE_GPU=1 but there is no CUDA device: "                 \
               << ::fusco::testing::no_gpu_reason();                                  \
      }                                                                               \
      GTEST_SKIP() << "no CUDA device (" << ::fusco::testing::no_gpu_reason() << ")"; \
    }                                                                                 \
  } while (false)
