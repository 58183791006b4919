#pragma once

// The host backend's bounded barrier (kernels/bounded_barrier.hpp on CUDA), queued on a host
// stream as two pieces of work: the arrival (the epoch stored into this rank's slot of every
// member's arrival slots) and the wait (every member's epoch in this rank's own slots, each
// wait bounded by the timeout; one that runs out records the peer and the wait in the fault
// record and gives up, and after a fault no wait waits). A member whose epoch is missing has
// its stream run up to its arrival once its rank's thread queued it: ranks as threads with
// lazy streams reach the barrier as GPUs would, and a rank that never queues the barrier costs
// the waiting rank one timeout.

#include "bounded_barrier.hpp"
#include "gpu/host_streams.hpp"

namespace fusco::gpu {

/// Under host_streams_lock().
void enqueue_host_barrier(const kernels::BoundedBarrierArgs& args, HostStream& stream);

}  // namespace fusco::gpu
