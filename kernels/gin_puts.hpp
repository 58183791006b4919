#pragma once

// Torch-free launchers of the GPU-initiated transfer between nodes over NCCL's GIN: blocks
// of a rank's staging window put straight into a peer's staging window, each put raising a
// signal at the peer; the receiver waits for those signals, uses the rows, and acknowledges
// with a signal back, which the sender waits for before it reuses the peer's region. Signals
// only count up (SignalInc), and the host passes the counts each wait needs, so signals are
// never reset. Every wait is bounded: one that runs out records the peer in the rank's fault
// record (kernels/bounded_barrier.hpp) and gives up; once a fault is recorded nobody waits.

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>

#include "bounded_barrier.hpp"
#include "core/direct_steps.hpp"

struct ncclDevComm;

namespace fusco::kernels {

/// One block to put: `bytes` at `src_offset` of this rank's part of the window to
/// `dst_offset` of `peer`'s part, in puts of `chunk_bytes` (each raising the peer's data
/// signal: the receiver can use chunk i while chunk i+1 is on the wire), once the peer has
/// acknowledged `acks_needed` earlier blocks.
struct GinPut {
  int32_t peer = 0;
  uint64_t acks_needed = 0;
  int64_t src_offset = 0;
  int64_t dst_offset = 0;
  int64_t bytes = 0;
  int64_t chunk_bytes = 0;
};

/// Where a rank's signals are: data signal `data_base + p` counts the puts rank p made to this
/// rank, free signal `free_base + p` the acknowledgements rank p sent this rank (one pair of
/// bases per step, so the steps of a call never mix).
struct GinSignals {
  uint32_t data_base = 0;
  uint32_t free_base = 0;
};

/// Bounds of the waits: how long each may take, the host's number naming it, the fault record.
struct GinBound {
  int64_t timeout_ns = 0;
  uint64_t wait = 0;
  BarrierFault* fault = nullptr;
};

struct GinPutArgs {
  ncclWindow_t window = nullptr;  ///< The staging window (symmetric): source and destination.
  int rank = 0;
  int count = 0;
  GinPut puts[core::kMaxDirectPeers];
  GinSignals signals;
  GinBound bound;
};

/// Waits for `needed[i]` puts from `peers[i]` in all (counting from the first call).
struct GinWaitArgs {
  int count = 0;
  int32_t peers[core::kMaxDirectPeers] = {};
  uint64_t needed[core::kMaxDirectPeers] = {};
  GinSignals signals;
  GinBound bound;
};

/// A stream arriving here, as the fan-out sees it: arrival rows [begin, begin + entries) from
/// `source`, in chunks of `chunk_rows`; chunk c has arrived once the source's data signal
/// reached `needed_before + c + 1`.
struct GinArrival {
  int64_t begin = 0;
  int64_t entries = 0;
  uint64_t needed_before = 0;
  int32_t source = 0;
};

/// Fan-out of arriving rows, chunk by chunk: each store (arrival row `token` -> rank, row)
/// waits for its row's chunk, then copies the row (one warp per store).
struct GinFanOutArgs {
  const core::DirectStore* stores = nullptr;
  int64_t count = 0;
  const char* arrive = nullptr;  ///< The arrival region (this rank's part of the window).
  int64_t row_bytes = 0;
  int64_t chunk_rows = 1;
  core::PeerTable recv{};
  int streams = 0;
  GinArrival arrivals[core::kMaxDirectPeers];  ///< By arrival row, ascending.
  GinSignals signals;
  GinBound bound;
};

/// Acknowledges to every peer of `peers` that its last put has been used.
struct GinAckArgs {
  int rank = 0;
  int count = 0;
  int32_t peers[core::kMaxDirectPeers] = {};
  GinSignals signals;
};

/// Every put of `args` (one CTA each); returns once their sources may be reused.
cudaError_t launch_gin_puts(const ncclDevComm& comm, const GinPutArgs& args, cudaStream_t stream);
/// Waits and copies as GinFanOutArgs says; later work sees the stored rows.
cudaError_t launch_gin_fan_out(const ncclDevComm& comm, const GinFanOutArgs& args,
                               cudaStream_t stream);
/// One CTA; later work on `stream` sees the rows the waited-for puts delivered.
cudaError_t launch_gin_waits(const ncclDevComm& comm, const GinWaitArgs& args, cudaStream_t stream);
/// One CTA; earlier work on `stream` (the rows' readers) is complete when it signals.
cudaError_t launch_gin_acks(const ncclDevComm& comm, const GinAckArgs& args, cudaStream_t stream);

}  // namespace fusco::kernels
