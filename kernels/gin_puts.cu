#include <nccl_device.h>

#include "gin_puts.hpp"

namespace fusco::kernels {

namespace {

// Waits until `signal` reaches `least` or the bound runs out (then records a fault naming
// `peer`). One thread.
__device__ void bounded_signal_wait(const ncclGin& gin, uint32_t signal, uint64_t least, int peer,
                                    const GinBound& bound) {
  if (faulted(bound.fault)) return;
  const int64_t start = now_ns();
  while (gin.readSignal(signal) < least) {
    if (now_ns() - start > bound.timeout_ns) {
      record_fault(bound.fault, peer, bound.wait);
      return;
    }
    __nanosleep(256);
  }
}

__global__ void gin_puts_kernel(ncclDevComm comm, GinPutArgs a) {
  if (threadIdx.x != 0) return;
  const GinPut& put = a.puts[blockIdx.x];
  ncclGin gin(comm, 0);
  // The peer has used what this rank put into the same region before.
  bounded_signal_wait(gin, a.signals.free_base + static_cast<uint32_t>(put.peer), put.acks_needed,
                      put.peer, a.bound);
  // The gather kernel's rows (earlier on the stream) are in the window.
  __threadfence_system();
  gin.put(ncclTeamWorld(comm), put.peer, a.window, static_cast<size_t>(put.dst_offset), a.window,
          static_cast<size_t>(put.src_offset), static_cast<size_t>(put.bytes),
          ncclGin_SignalInc{a.signals.data_base + static_cast<uint32_t>(a.rank)});
  gin.flush(ncclCoopThread());  // the source rows may be overwritten once this kernel ends
}

__global__ void gin_waits_kernel(ncclDevComm comm, GinWaitArgs a) {
  const int i = static_cast<int>(threadIdx.x);
  if (i < a.count) {
    ncclGin gin(comm, 0);
    bounded_signal_wait(gin, a.signals.data_base + static_cast<uint32_t>(a.peers[i]), a.needed[i],
                        a.peers[i], a.bound);
  }
  __syncthreads();
  __threadfence();  // later kernels read the delivered rows
}

__global__ void gin_acks_kernel(ncclDevComm comm, GinAckArgs a) {
  const int i = static_cast<int>(threadIdx.x);
  if (i >= a.count) return;
  ncclGin gin(comm, 0);
  gin.signal(ncclTeamWorld(comm), a.peers[i],
             ncclGin_SignalInc{a.signals.free_base + static_cast<uint32_t>(a.rank)});
}

}  // namespace

cudaError_t launch_gin_puts(const ncclDevComm& comm, const GinPutArgs& args, cudaStream_t stream) {
  if (args.count <= 0) return cudaSuccess;
  if (args.count > core::kMaxDirectPeers) return cudaErrorInvalidValue;
  gin_puts_kernel<<<args.count, 32, 0, stream>>>(comm, args);
  return cudaGetLastError();
}

cudaError_t launch_gin_waits(const ncclDevComm& comm, const GinWaitArgs& args,
                             cudaStream_t stream) {
  if (args.count <= 0) return cudaSuccess;
  if (args.count > core::kMaxDirectPeers) return cudaErrorInvalidValue;
  gin_waits_kernel<<<1, 96, 0, stream>>>(comm, args);
  return cudaGetLastError();
}

cudaError_t launch_gin_acks(const ncclDevComm& comm, const GinAckArgs& args, cudaStream_t stream) {
  if (args.count <= 0) return cudaSuccess;
  if (args.count > core::kMaxDirectPeers) return cudaErrorInvalidValue;
  gin_acks_kernel<<<1, 96, 0, stream>>>(comm, args);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
