#include "direct_dispatch.hpp"

namespace fusco::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per stored row: a row of 7168 bf16 is 896 16-byte words, 28 per lane. The rows
// may go to peer GPUs (LSA pointers): each storing thread ends with a system-scope fence, so
// its stores are visible to every GPU before the kernel ends and the node barrier after it
// publishes its epoch (issue 15, defect 14: the barrier's own leading fence orders only the
// barrier thread's view, not other threads' stores of an earlier kernel, under the PTX
// memory model's letter).
__global__ void direct_dispatch_kernel(DirectDispatchArgs args) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (i >= args.num_stores) {
    return;
  }
  const core::DirectStore store = args.stores[i];
  if (store.rank == core::DirectStore::kNothing) {
    return;
  }
  const char* src = static_cast<const char*>(args.x) + store.token * args.x_pitch;
  const int lane = static_cast<int>(threadIdx.x % 32);
  core::copy_row_part(core::store_destination(args.recv, store), src, args.row_bytes, lane, 32);
  if (args.extra_row_bytes > 0) {
    core::copy_row_part(core::store_destination(args.extra_recv, store),
                        static_cast<const char*>(args.extra) + store.token * args.extra_pitch,
                        args.extra_row_bytes, lane, 32);
  }
  __threadfence_system();
}

}  // namespace

cudaError_t launch_direct_dispatch(const DirectDispatchArgs& args, cudaStream_t stream) {
  if (args.num_stores <= 0 || (args.row_bytes <= 0 && args.extra_row_bytes <= 0)) {
    return cudaSuccess;
  }
  const int64_t blocks = (args.num_stores + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  direct_dispatch_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
