#pragma once

// Row moves (RowMove lists in device memory) run by the row-gather kernel: the
// permute, re-sort and un-sort steps of the unfused GPU pipeline and of NCCL's send/recv path.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device_buffer.hpp"
#include "gpu/unfused_device_lists.hpp"
#include "row_gather.hpp"

namespace fusco::gpu {

static_assert(sizeof(RowMove) == sizeof(kernels::GatherRow) &&
              offsetof(RowMove, from) == offsetof(kernels::GatherRow, token) &&
              offsetof(RowMove, to) == offsetof(kernels::GatherRow, row));

/// The gather that copies row moves[i].from of `src` (rows `src_pitch` bytes apart) to row
/// moves[i].to of `dst` (rows `row_bytes` apart), for the `count` moves.
inline kernels::GatherRowsArgs moves_args(const void* src, int64_t src_pitch, void* dst,
                                          const DeviceBuffer& moves, size_t count,
                                          int64_t row_bytes) {
  kernels::GatherRowsArgs args;
  args.src = src;
  args.dst = dst;
  args.rows = moves.as<kernels::GatherRow>();
  args.num_rows = static_cast<int64_t>(count);
  args.row_bytes = row_bytes;
  args.src_pitch = src_pitch;
  return args;
}

/// That gather on `stream` (the row gather kernel).
inline cudaError_t launch_moves(const void* src, int64_t src_pitch, void* dst,
                                const DeviceBuffer& moves, size_t count, int64_t row_bytes,
                                cudaStream_t stream) {
  return kernels::launch_gather_rows(moves_args(src, src_pitch, dst, moves, count, row_bytes),
                                     stream);
}

}  // namespace fusco::gpu
