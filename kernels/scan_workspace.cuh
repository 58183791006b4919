#pragma once

// Scratch memory of the kernels' CUB exclusive scans over int64 counts, carved from one
// workspace in 256-byte aligned parts.

#include <cstddef>
#include <cstdint>
#include <cub/device/device_scan.cuh>

namespace fusco::kernels {

inline size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

/// Temporary bytes cub::DeviceScan::ExclusiveSum needs for `items` int64 values.
inline size_t scan_temp_bytes(int64_t items) {
  size_t bytes = 0;
  cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                static_cast<int64_t*>(nullptr), static_cast<int>(items));
  return bytes;
}

}  // namespace fusco::kernels
