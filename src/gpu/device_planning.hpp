#pragma once

// The steps of planning on the device, shared by DeviceGroup (logical ranks on one GPU: the
// count matrix in device memory, a cross-stream barrier) and NcclCommunicator (one rank per
// GPU: the count matrix in a symmetric window, rows published through LSA pointers, an LSA
// barrier). Per rank: allocate the plan, lay out its routing into its row of the matrix; after
// the barrier, run the planning kernels over the whole matrix.

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "core/device_plan_steps.hpp"
#include "core/layout.hpp"
#include "gpu/device_plan_impl.hpp"

namespace fusco::gpu {

/// The expert map in device memory, and with `with_matrix` an unfilled count matrix.
Result<std::shared_ptr<GroupPlanning>> upload_group(const core::ResolvedExpertMap& map,
                                                    bool with_matrix, const DeviceOps& ops);

/// What the planning kernels read of the group: `begins` (the [W][P + 1] matrix in memory
/// this rank's GPU reads), the map of `group`, the layout, every rank's receive rows.
core::GroupCounts counts_of(const int64_t* begins, const GroupPlanning& group,
                            const core::ResolvedExpertMap& map, const RecvLayout& layout,
                            int64_t recv_rows);

/// Every rank's expert-major receive rows: `max_recv_rows`, or for 0 the most that can arrive
/// (`tokens[r]` tokens of `topk` slots on rank r).
int64_t expert_major_rows(int64_t max_recv_rows, const std::vector<int64_t>& tokens, int topk,
                          const core::ResolvedExpertMap& map, const RecvLayout& layout);

/// Rows of rank `rank`'s receive buffer: local experts x capacity, or the expert-major rows.
int64_t device_recv_rows(const RecvLayout& layout, const core::ResolvedExpertMap& map, int rank,
                         int64_t expert_major);

/// What every rank's plan of one plan_on_device call shares.
struct DevicePlanning {
  const void* owner = nullptr;  ///< The group or communicator whose plans these are.
  int64_t num_experts = 0;
  const core::ResolvedExpertMap* map = nullptr;  ///< Resolved for the world.
  const PlanOptions* options = nullptr;
  int64_t recv_rows = 0;  ///< Every rank's expert-major receive rows.
  std::shared_ptr<const GroupPlanning> group;
};

/// Rank `rank`'s plan of `ids` with every buffer allocated (nothing enqueued yet); under an
/// expert-major layout its receive buffer has `planning.recv_rows` rows.
Result<std::shared_ptr<DevicePlan::Impl>> allocate_device_plan(const DevicePlanning& planning,
                                                               const TensorView& ids, int rank);

/// Enqueues rank `plan`'s layout of `ids` on `stream`: its positions, and its expert_begin row
/// into `begins_row` (P + 1 entries); then the record of its first bad id.
Status launch_rank_layout(const DevicePlan::Impl& plan, const TensorView& ids,
                          const core::GroupCounts& counts, int64_t* begins_row,
                          cudaStream_t stream);

/// Enqueues the planning kernels of `plan` over the complete count matrix on `stream`.
Status launch_rank_planning(DevicePlan::Impl& plan, const TensorView& ids,
                            const core::GroupCounts& counts, cudaStream_t stream);

/// After `plan`'s kernels are done: kInvalidArgument naming `arg` (the routing argument),
/// token, slot and id when its routing held an id outside [-1, E).
Status routing_verdict(const DevicePlan::Impl& plan, const std::string& arg);

}  // namespace fusco::gpu
