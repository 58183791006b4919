#pragma once

// A barrier across the ranks of a node whose every wait is bounded: each rank stores the
// barrier's epoch into its slot of every member's arrival slots (through their load/store
// addresses: NCCL LSA pointers, or plain device pointers for ranks sharing a GPU), then waits
// for every member's epoch in its own slots — for at most a timeout. A wait that runs out
// records the peer it waited for and the epoch in a fault word in mapped host memory (the host
// reads it without a synchronisation) and gives up; once a fault is recorded later barriers
// wait no more, so a dead or stuck peer costs one timeout, never a hang. Memory order: the
// stores of earlier work on the stream are made visible system-wide before the epoch is
// published (release), and a member's epoch is read with acquire before later work runs.
// Also the device side of every other bounded wait: now_ns and record_fault.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/direct_steps.hpp"

namespace fusco::kernels {

/// What a bounded wait that ran out records (peer = -1: none yet): the peer it waited for and
/// the host's number for that wait (which names the step). In host memory mapped into the
/// device (cudaHostAllocMapped), written once by the device; every bounded wait of a rank
/// (barriers, GIN signals) shares it.
struct BarrierFault {
  int64_t peer = -1;
  int64_t wait = 0;
};

struct BoundedBarrierArgs {
  /// Every member's arrival slots ([kMaxDirectPeers] uint64, indexed by rank), by rank.
  uint64_t* slots[core::kMaxDirectPeers] = {};
  int rank = 0;   ///< This rank (its slot in the members' slots).
  int first = 0;  ///< The members: ranks [first, first + count), this rank among them.
  int count = 0;
  uint64_t epoch = 0;      ///< This barrier's number: 1, 2, ... in the order every member calls.
  uint64_t wait = 0;       ///< The host's number of this wait, recorded on a fault.
  int64_t timeout_ns = 0;  ///< How long each wait may take.
  BarrierFault* fault = nullptr;  ///< Device address of the mapped fault record.
};

#if defined(__CUDACC__)
/// Device time in ns (%globaltimer).
__device__ inline int64_t now_ns() {
  int64_t t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/// Records that wait `wait` ran out waiting for `peer` (the caller records at most once).
__device__ inline void record_fault(BarrierFault* fault, int64_t peer, uint64_t wait) {
  volatile BarrierFault* record = fault;
  record->wait = static_cast<int64_t>(wait);
  __threadfence_system();
  record->peer = peer;
  __threadfence_system();
}

/// True once some wait of this rank ran out: later waits give up at once.
__device__ inline bool faulted(const BarrierFault* fault) {
  return static_cast<const volatile BarrierFault*>(fault)->peer >= 0;
}
#endif

/// One CTA on `stream`.
cudaError_t launch_bounded_barrier(const BoundedBarrierArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
