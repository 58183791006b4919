#pragma once

// NcclCommunicator's path where NCCL's device API is unavailable (no symmetric memory, or
// ranks that cannot load/store each other's memory) or asked for (NcclPath::kSendRecv): the
// rows move with grouped ncclSend/ncclRecv. Dispatch gathers each destination's rows into a
// contiguous block (the plan's expert-major order), sends the blocks, and the receiver
// scatters every incoming row into its expert-major place; combine is the reverse, summing
// the returned rows in the plan's fixed order. Same results as the direct path, bit for bit.

#include <nccl.h>

#include <string>
#include <vector>

#include "fusco/tensor.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_programme.hpp"
#include "gpu/nccl_watch.hpp"
#include "gpu/staged_programme.hpp"
#include "gpu/unfused_device_lists.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

/// Grouped ncclSend/ncclRecv (one ncclGroupStart/End) on `lane`: every block of `sends` from
/// `send` to its peer, every block of `recvs` into `recv` from its peer (items of
/// `item_bytes`; empty blocks are skipped). Two messages between one pair of ranks match in the
/// order posted. The exchange is marked on the lane's watch: it must end within the lane's
/// timeout (see gpu/nccl_watch.hpp).
Status exchange_blocks(const void* send, const std::vector<detail::StagedBlock>& sends, void* recv,
                       const std::vector<detail::StagedBlock>& recvs, size_t item_bytes,
                       const NcclLane& lane, const std::string& what);

/// exchange_blocks of host int64 values through device memory (NCCL moves device memory):
/// `mine` goes out as `sends`, `incoming` values come in as `recvs` (items of `per_item`
/// values each); waits for them on the host (bounded: NcclWatch::wait) and returns them.
Result<std::vector<int64_t>> exchange_values(const std::vector<int64_t>& mine,
                                             const std::vector<detail::StagedBlock>& sends,
                                             size_t incoming,
                                             const std::vector<detail::StagedBlock>& recvs,
                                             size_t per_item, const NcclLane& lane,
                                             const std::string& what);

/// One plan's row lists, built collectively at plan time, in device memory.
struct SendRecvProgramme {
  std::vector<int64_t> send_offsets;   ///< [W + 1] rows for each destination.
  std::vector<int64_t> stage_offsets;  ///< [W + 1] rows from each source.
  DeviceBuffer permute;                ///< x token -> send row
  DeviceBuffer resort;                 ///< staging row -> receive row
  DeviceBuffer unsort;                 ///< receive row -> staging row
  DeviceBuffer return_terms;           ///< combine terms over the returned rows
  int64_t send_rows = 0;
  int64_t stage_rows = 0;

  /// Collective over the lane's communicator of `world` ranks: the send side from `plan`, then
  /// every destination learns the receive rows of what it gets (counts, then row indices, by
  /// ncclSend/ncclRecv).
  static Result<SendRecvProgramme> build(const detail::PlanData& plan, int world,
                                         const NcclLane& lane);
};

/// Scratch buffers of the path, grown on demand.
struct SendRecvBuffers {
  const DeviceOps* ops = &cuda_ops();
  DeviceBuffer send;
  DeviceBuffer stage;
  size_t send_bytes = 0;
  size_t stage_bytes = 0;

  Status reserve(size_t send_needed, size_t stage_needed);
};

/// Dispatch: x (device, rows x_pitch apart) -> recv (contiguous, num_recv_rows rows), the
/// plan's `padding` rows zeroed.
Status send_recv_dispatch(const RowRanges& padding, const SendRecvProgramme& programme,
                          SendRecvBuffers& buffers, const TensorView& x, void* recv,
                          const NcclLane& lane);

/// Combine: expert_out (device, strided rows allowed) -> out, weighted fp32 sums in the
/// order of `groups` (the plan's token and group offsets, uploaded).
Status send_recv_combine(const detail::PlanData& plan, const DeviceProgramme& groups,
                         const SendRecvProgramme& programme, SendRecvBuffers& buffers,
                         const TensorView& expert_out, const TensorView& topk_weights,
                         const TensorView& out, const NcclLane& lane);

}  // namespace fusco::gpu
