#include <cstdint>

#include "row_gather.hpp"

namespace fusco::kernels {

namespace {

// One block per row; 16-byte vector copies when both rows are 16-byte aligned.
__global__ void gather_rows_kernel(const char* __restrict__ src, char* __restrict__ dst,
                                   const GatherRow* __restrict__ rows, int64_t row_bytes) {
  const GatherRow r = rows[blockIdx.x];
  const char* from = src + r.token * row_bytes;
  char* to = dst + r.row * row_bytes;
  const bool aligned = ((reinterpret_cast<uintptr_t>(from) | reinterpret_cast<uintptr_t>(to) |
                         static_cast<uintptr_t>(row_bytes)) &
                        15u) == 0;
  if (aligned) {
    const int64_t vectors = row_bytes / 16;
    for (int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      reinterpret_cast<int4*>(to)[i] = reinterpret_cast<const int4*>(from)[i];
    }
    return;
  }
  for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) {
    to[i] = from[i];
  }
}

}  // namespace

cudaError_t launch_gather_rows(const GatherRowsArgs& args, cudaStream_t stream) {
  if (args.num_rows <= 0 || args.row_bytes <= 0) {
    return cudaSuccess;
  }
  if (args.num_rows > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  gather_rows_kernel<<<static_cast<unsigned>(args.num_rows), 256, 0, stream>>>(
      static_cast<const char*>(args.src), static_cast<char*>(args.dst), args.rows, args.row_bytes);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
