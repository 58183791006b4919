#include <cstdint>

#include "core/direct_steps.hpp"
#include "row_gather.hpp"

namespace fusco::kernels {

namespace {

// One block per row, the copy shared with the direct dispatch kernel.
__global__ void gather_rows_kernel(const char* __restrict__ src, char* __restrict__ dst,
                                   const GatherRow* __restrict__ rows, int64_t row_bytes,
                                   int64_t src_pitch) {
  const GatherRow r = rows[blockIdx.x];
  core::copy_row_part(dst + r.row * row_bytes, src + r.token * src_pitch, row_bytes,
                      static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x));
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
      static_cast<const char*>(args.src), static_cast<char*>(args.dst), args.rows, args.row_bytes,
      args.src_pitch != 0 ? args.src_pitch : args.row_bytes);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
