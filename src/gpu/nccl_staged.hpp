#pragma once

// NcclCommunicator's inter-node path: a rank's staged streams (gpu/device_staged.hpp) with
// grouped ncclSend/ncclRecv as the transfer between nodes, while the rows inside a node move
// by the direct kernels over LSA pointers. Dispatch: gather into send staging, one grouped
// exchange of every stream's block, fan-out of the arrived rows into the node's receive
// windows. Combine: the weight rows of the entries travel the same way before the barrier;
// after it the relay's return rows (partial sums) go back in one grouped exchange, and the
// source's combine reads them as table entry world. Each rank posts only its own streams'
// blocks; NCCL pairs them (detail::match_blocks is the rule, tested on the CPU).

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "gpu/device_staged.hpp"
#include "gpu/nccl_watch.hpp"

namespace fusco::gpu {

/// This rank's part of a call: its lists, its scratch, and its NCCL communicator and stream.
struct NcclStagedRank {
  const DeviceStaged& staged;
  StagedScratch& scratch;
  int rank;
  NcclLane lane;
};

/// The scratch buffers of a dispatch (rows of `row_bytes`, companion rows of `extra_bytes`)
/// and of a combine (rows of `combine_row_bytes`, weight rows of `topk`), grown now: called
/// before the ranks agree on a call, so that no rank fails after its peers entered NCCL
/// calls or barriers (the calls below then find the buffers grown).
Status reserve_staged(const NcclStagedRank& me, int64_t row_bytes, int64_t extra_bytes,
                      int64_t combine_row_bytes, int64_t topk);

/// Dispatch of rows of `row_bytes` (x rows `pitch` apart): gather, exchange, fan-out into
/// `recv` (the node's receive windows). `send`/`arrive` name the scratch buffers.
Status nccl_staged_dispatch(const NcclStagedRank& me, const void* x, int64_t pitch,
                            int64_t row_bytes, const core::PeerTable& recv, StagedBuffer send,
                            StagedBuffer arrive);

/// Combine, before the barrier: this rank's top-k weight rows of its entries to their
/// targets, and the weight rows of the entries that arrived here.
Status nccl_staged_weights(const NcclStagedRank& me, const float* topk_weights, int64_t topk);

/// Combine, after the barrier: the return rows of the streams that arrived here (from the
/// node's expert outputs, weighted by the arrived weight rows) to their sources, and this
/// rank's returned rows from its targets. Returns its return buffer (rows of `row_bytes`).
Result<char*> nccl_staged_return(const NcclStagedRank& me, const core::PeerTable& expert_out,
                                 int64_t topk, int64_t hidden, int32_t row_type, int64_t row_bytes);

}  // namespace fusco::gpu
