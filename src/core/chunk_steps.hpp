#pragma once

// How a stream of rows is cut into chunks, for host and device code alike: the CPU engine's
// staging slots and the GPU engine's GIN puts (a receiver fans out chunk i while chunk i+1 is
// on the wire) count chunks the same way on both ends of a stream.

#include <cstdint>

#include "fusco/host_device.hpp"

namespace fusco::core {

/// Rows of `row_bytes` in a chunk of at most `chunk_bytes`: at least one.
FUSCO_HOST_DEVICE inline int64_t rows_per_chunk(int64_t chunk_bytes, int64_t row_bytes) {
  return row_bytes <= 0 || chunk_bytes < row_bytes ? 1 : chunk_bytes / row_bytes;
}

/// Chunks of `rows` rows, `per_chunk` each (the last may be shorter).
FUSCO_HOST_DEVICE inline int64_t chunk_count(int64_t rows, int64_t per_chunk) {
  return (rows + per_chunk - 1) / per_chunk;
}

/// The chunk that holds row `row` of a stream whose rows start at `first`.
FUSCO_HOST_DEVICE inline int64_t chunk_of(int64_t row, int64_t first, int64_t per_chunk) {
  return (row - first) / per_chunk;
}

}  // namespace fusco::core
