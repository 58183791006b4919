#pragma once

// What a fusco::gpu::DevicePlan holds: the host plan (or, for plans made on the device, the
// shapes the argument checks need and the buffers the planning kernels fill), its programme
// in device memory and the group or communicator that made it (calls check that plans are
// their own).

#include <memory>

#include "fusco/gpu.hpp"
#include "gpu/device_programme.hpp"
#include "gpu/staged_puts.hpp"

namespace fusco::gpu {

struct SendRecvProgramme;
struct DeviceStaged;
struct StagedGroupCopies;

/// Device memory of one DeviceGroup::plan_on_device call that every rank's plan reads: the
/// expert map and the group's count matrix (core::GroupCounts), in one allocation.
struct GroupPlanning {
  const DeviceOps* ops = nullptr;  ///< The backend of the group's plans.
  DeviceBuffer storage;
  int64_t* physical = nullptr;    ///< [E]
  int32_t* owner = nullptr;       ///< [P]
  int64_t* rank_begin = nullptr;  ///< [W + 1]
  int64_t* begins = nullptr;      ///< [W][P + 1]
};

/// The parts of a plan made on the device: where its counts live and the scratch memory of
/// its planning kernels, in one allocation (kept until the plan goes, as kernels may still be
/// running when the planning call returns).
struct DeviceMadePlan {
  detail::PlanData shape;     ///< rank, T, k, E, options, num_recv_rows, local experts.
  int64_t most_unfilled = 0;  ///< The most rows a block leaves unfilled (capacity, alignment).
  std::shared_ptr<const GroupPlanning> group;
  DeviceBuffer storage;
  int64_t* positions = nullptr;           ///< [T * k]
  void* layout_workspace = nullptr;       ///< kernels::layout_workspace_bytes
  void* planning_workspace = nullptr;     ///< kernels::device_planning_workspace_bytes
  int64_t* first_row = nullptr;           ///< [P]
  int64_t* limit = nullptr;               ///< [P]
  int64_t* tokens_per_expert = nullptr;   ///< [local experts]
  int64_t* dropped_per_expert = nullptr;  ///< [local experts]
  int64_t* padded_per_expert = nullptr;   ///< [local experts]
  int64_t* unfilled = nullptr;            ///< [local experts][2]
  int64_t* bad = nullptr;                 ///< [3]: first bad pair, its id, the layout's word.

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
  /// Plans that stage rows between nodes: this rank's staged lists (and, moving them by GIN,
  /// where its puts land in the peers' staging windows).
  std::shared_ptr<const DeviceStaged> staged;
  std::shared_ptr<const detail::PutDestinations> put_destinations;
  /// Plans of a DeviceGroup of several nodes: the copies between its ranks, shared by the
  /// plans of one plan() call.
  std::shared_ptr<const StagedGroupCopies> copies;

  /// The plan's shapes (and, for host plans, everything else).
  const detail::PlanData& data() const { return made ? made->shape : plan.data(); }
  /// Stores the dispatch kernel walks: the host plan's rows, or one per (token, slot).
  int64_t num_stores() const {
    return made ? made->shape.num_tokens * made->shape.topk
                : static_cast<int64_t>(plan.data().direct.size());
  }
};

/// One rank's plan in device memory, into `impl`: its programme and, when it stages rows
/// between nodes, its staged lists (its return buffer then read as table entry W) — the
/// lists `staged` when given (a one-GPU group builds and matches every rank's lists first,
/// empty ones included), else built here when the plan has staged rows. The one place
/// DeviceGroup and NcclCommunicator upload host plans.
Status upload_rank_plan(const detail::PlanData& plan, const DeviceOps& ops,
                        const detail::RankStaged* staged, DevicePlan::Impl& impl);

/// Zeroes the receive rows of `plan` that no row fills (padding, or a capacity block's unfilled
/// rows; rows of `row_bytes`, contiguous) on `on`'s stream, for plans made on either side.
Status zero_unfilled_rows(const DevicePlan::Impl& plan, void* rows, int64_t row_bytes,
                          const Launch& on);

}  // namespace fusco::gpu
