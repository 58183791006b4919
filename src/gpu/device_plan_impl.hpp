#pragma once

// What a fusco::gpu::DevicePlan holds: the host plan (or, for plans made on the device, the
// shapes the argument checks need and the buffers the planning kernels fill), its programme
// in device memory and the group or communicator that made it (calls check that plans are
// their own).

#include <memory>

#include "fusco/gpu.hpp"
#include "gpu/device_programme.hpp"

namespace fusco::gpu {

struct SendRecvProgramme;

/// Device memory of one DeviceGroup::plan_on_device call that every rank's plan reads: the
/// expert map and the group's count matrix (core::GroupCounts).
struct GroupPlanning {
  DeviceBuffer physical;    ///< int64 [E]
  DeviceBuffer owner;       ///< int32 [P]
  DeviceBuffer rank_begin;  ///< int64 [W + 1]
  DeviceBuffer begins;      ///< int64 [W][P + 1]
};

/// The parts of a plan made on the device: where its counts live and the scratch memory of
/// its planning kernels (kept until the plan goes, as kernels may still be running when the
/// planning call returns).
struct DeviceMadePlan {
  detail::PlanData shape;  ///< rank, T, k, E, options, num_recv_rows, local experts.
  int64_t capacity = 0;
  std::shared_ptr<const GroupPlanning> group;
  DeviceBuffer positions;           ///< int64 [T * k]
  DeviceBuffer layout_workspace;    ///< kernels::layout_workspace_bytes
  DeviceBuffer planning_workspace;  ///< kernels::device_planning_workspace_bytes
  DeviceBuffer first_index;         ///< int64 [P]
  DeviceBuffer tokens_per_expert;   ///< int64 [local experts]
  DeviceBuffer dropped_per_expert;  ///< int64 [local experts]
  DeviceBuffer bad;                 ///< int64 [3]: first bad pair, its id, the layout's word.

  int64_t local_experts() const { return static_cast<int64_t>(shape.local_experts.size()); }
};

struct DevicePlan::Impl {
  const void* owner = nullptr;
  Plan plan;  ///< Plans made on the host; invalid for plans made on the device.
  DeviceProgramme programme;
  /// Plans of NcclCommunicator: the most rows any rank of the group receives (what every
  /// rank's window must hold, so all ranks agree on whether a call fits).
  int64_t group_max_recv_rows = 0;
  /// Plans of an NcclCommunicator on the ncclSend/ncclRecv path: their row lists.
  std::shared_ptr<const SendRecvProgramme> send_recv;
  /// Plans of DeviceGroup::plan_on_device.
  std::shared_ptr<const DeviceMadePlan> made;

  /// The plan's shapes (and, for host plans, everything else).
  const detail::PlanData& data() const { return made ? made->shape : plan.data(); }
  /// Stores the dispatch kernel walks: the host plan's rows, or one per (token, slot).
  int64_t num_stores() const {
    return made ? made->shape.num_tokens * made->shape.topk
                : static_cast<int64_t>(plan.data().direct.size());
  }
};

/// Zeroes the receive rows of `plan` that no row fills (padding, or a capacity block's unfilled
/// rows; rows of `row_bytes`, contiguous) on `stream`, for plans made on either side.
Status zero_unfilled_rows(const DevicePlan::Impl& plan, void* rows, int64_t row_bytes,
                          cudaStream_t stream, const std::string& what);

}  // namespace fusco::gpu
