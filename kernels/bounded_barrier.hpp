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

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/direct_steps.hpp"

namespace fusco::kernels {

/// What a barrier that ran out records (peer = -1: none yet). In host memory mapped into the
/// device (cudaHostAllocMapped), written once by the device.
struct BarrierFault {
  int64_t peer = -1;
  int64_t epoch = 0;
};

struct BoundedBarrierArgs {
  /// Every member's arrival slots ([kMaxDirectPeers] uint64, indexed by rank), by rank.
  uint64_t* slots[core::kMaxDirectPeers] = {};
  int rank = 0;   ///< This rank (its slot in the members' slots).
  int first = 0;  ///< The members: ranks [first, first + count), this rank among them.
  int count = 0;
  uint64_t epoch = 0;      ///< This barrier's number: 1, 2, ... in the order every member calls.
  int64_t timeout_ns = 0;  ///< How long each wait may take.
  BarrierFault* fault = nullptr;  ///< Device address of the mapped fault record.
};

/// One CTA on `stream`.
cudaError_t launch_bounded_barrier(const BoundedBarrierArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
