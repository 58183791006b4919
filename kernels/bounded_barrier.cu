#include <cuda/atomic>

#include "bounded_barrier.hpp"

namespace fusco::kernels {

namespace {

__global__ void bounded_barrier_kernel(BoundedBarrierArgs a) {
  // Set when a fault is (or gets) recorded: the first of this CTA's waits that runs out
  // records it; after a fault nobody waits any more.
  __shared__ int gave_up;
  const int i = static_cast<int>(threadIdx.x);
  if (i == 0) gave_up = faulted(a.fault) ? 1 : 0;
  // Earlier work's stores (rows stored into peers, counts published) are complete at this
  // kernel's start; the fence makes them visible system-wide before the epoch goes out.
  __threadfence_system();
  __syncthreads();
  const bool member = i < a.count;
  const int peer = a.first + i;
  if (member) {
    cuda::atomic_ref<uint64_t, cuda::thread_scope_system> slot(a.slots[peer][a.rank]);
    slot.store(a.epoch, cuda::memory_order_release);
  }
  if (member && gave_up == 0) {
    cuda::atomic_ref<uint64_t, cuda::thread_scope_system> seen(a.slots[a.rank][peer]);
    const int64_t start = now_ns();
    while (seen.load(cuda::memory_order_acquire) < a.epoch) {
      if (now_ns() - start > a.timeout_ns) {
        if (atomicCAS(&gave_up, 0, 1) == 0) record_fault(a.fault, peer, a.wait);
        break;
      }
      __nanosleep(256);
    }
  }
  __syncthreads();
  __threadfence_system();  // later work reads what the members stored before their epoch
}

}  // namespace

cudaError_t launch_bounded_barrier(const BoundedBarrierArgs& args, cudaStream_t stream) {
  if (args.count <= 0 || args.count > core::kMaxDirectPeers) {
    return cudaErrorInvalidValue;
  }
  bounded_barrier_kernel<<<1, 96, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
