#include <nccl_device.h>

#include "core/chunk_steps.hpp"
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
  for (int64_t done = 0; done < put.bytes; done += put.chunk_bytes) {
    const int64_t bytes = put.bytes - done < put.chunk_bytes ? put.bytes - done : put.chunk_bytes;
    gin.put(ncclTeamWorld(comm), put.peer, a.window, static_cast<size_t>(put.dst_offset + done),
            a.window, static_cast<size_t>(put.src_offset + done), static_cast<size_t>(bytes),
            ncclGin_SignalInc{a.signals.data_base + static_cast<uint32_t>(a.rank)});
  }
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

// The arriving stream that holds arrival row `row` (streams ascending by arrival row).
__device__ const GinArrival& arrival_of(const GinFanOutArgs& a, int64_t row) {
  int i = 0;
  while (i + 1 < a.streams && a.arrivals[i + 1].begin <= row) ++i;
  return a.arrivals[i];
}

__global__ void gin_fan_out_kernel(ncclDevComm comm, GinFanOutArgs a) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  ncclGin gin(comm, 0);
  // The last signal value this warp saw, per source it saw it from (stores come in arrival
  // order, so most stores of a warp need no new read).
  int32_t seen_source = -1;
  uint64_t seen = 0;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       s < a.count; s += warps) {
    const core::DirectStore store = a.stores[s];
    if (lane == 0) {
      const GinArrival& from = arrival_of(a, store.token);
      const uint64_t needed =
          from.needed_before +
          static_cast<uint64_t>(core::chunk_of(store.token, from.begin, a.chunk_rows)) + 1;
      if (from.source != seen_source || seen < needed) {
        bounded_signal_wait(gin, a.signals.data_base + static_cast<uint32_t>(from.source), needed,
                            from.source, a.bound);
        seen_source = from.source;
        seen = gin.readSignal(a.signals.data_base + static_cast<uint32_t>(from.source));
      }
    }
    __syncwarp();  // the chunk's rows are visible to the whole warp after lane 0's acquire
    core::copy_row_part(core::store_destination(a.recv, store),
                        a.arrive + store.token * a.row_bytes, a.row_bytes, lane, 32);
  }
  __syncthreads();
  __threadfence_system();  // the stored rows are visible before the node's barrier
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

cudaError_t launch_gin_fan_out(const ncclDevComm& comm, const GinFanOutArgs& args,
                               cudaStream_t stream) {
  if (args.count <= 0 || args.row_bytes <= 0) return cudaSuccess;
  if (args.streams <= 0 || args.streams > core::kMaxDirectPeers || args.chunk_rows <= 0) {
    return cudaErrorInvalidValue;
  }
  constexpr int kWarps = 8;
  const int64_t blocks = (args.count + kWarps - 1) / kWarps;
  gin_fan_out_kernel<<<static_cast<unsigned>(blocks < 1024 ? blocks : 1024), kWarps * 32, 0,
                       stream>>>(comm, args);
  return cudaGetLastError();
}

cudaError_t launch_gin_acks(const ncclDevComm& comm, const GinAckArgs& args, cudaStream_t stream) {
  if (args.count <= 0) return cudaSuccess;
  if (args.count > core::kMaxDirectPeers) return cudaErrorInvalidValue;
  gin_acks_kernel<<<1, 96, 0, stream>>>(comm, args);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
