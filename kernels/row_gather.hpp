#pragma once

// Torch-free launcher of the row gather kernel: the direct path of dispatch on a GPU. Each
// listed row is copied from the source matrix to its final place in a destination matrix.
// Raw pointers and a cudaStream_t only; no torch types.

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fusco::kernels {

/// One row to copy: src row `token` -> dst row `row`.
struct GatherRow {
  int32_t token;
  int32_t pad;
  int64_t row;
};

struct GatherRowsArgs {
  const void* src = nullptr;        ///< [T, row_bytes] device memory, rows src_pitch apart.
  void* dst = nullptr;              ///< [R, row_bytes] device memory.
  const GatherRow* rows = nullptr;  ///< [num_rows] device memory.
  int64_t num_rows = 0;
  int64_t row_bytes = 0;
  int64_t src_pitch = 0;  ///< Bytes from one source row to the next; 0: row_bytes.
};

/// Enqueues the gather on `stream`. Returns the launch error (cudaSuccess when none).
cudaError_t launch_gather_rows(const GatherRowsArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
