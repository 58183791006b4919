#pragma once

// The GPU engine on one device (built with FUSCO_WITH_CUDA; link fusco::fusco_gpu):
// W logical ranks share one GPU, one CUDA stream each, their buffers in the same device
// memory. Dispatch stores every row of x straight into its final expert-major place in the
// destination rank's receive buffer, and combine reads every term straight from the owning
// rank's expert output and reduces in the plan's fixed order: the same kernels the NVLink path
// runs through NCCL's LSA pointers, and the same bits as the CPU engine. Ranks grouped into
// several nodes also run the staged inter-node path (relays, partial sums) with those kernels.
//
// Calls are made from one host thread for all ranks at once and return after enqueueing;
// rank r's results are ready on stream(r). Streams: work writing rank r's inputs (routing,
// x, expert outputs, weights) goes on stream(r) or before an event stream(r) waits for; work
// reading its results on another stream waits for an event recorded on stream(r) after the
// call; peers read rank r's expert outputs (and write its receive buffer) until the call's
// last barrier, so later writers of those buffers go on stream(r) too. Plans come from the CPU
// planner (a collective of the W ranks over host routing), uploaded once and reused by every
// dispatch and combine, or from the planning kernels (plan_on_device: no host synchronisation
// between the router and the dispatch).

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "fusco/communicator.hpp"

namespace fusco::gpu {

class DeviceGroup;

/// One rank's plan with its programme in device memory. Cheap to copy (shared).
class DevicePlan {
 public:
  DevicePlan() = default;
  /// The host plan (counts, layout, stats) of a plan from DeviceGroup::plan(); an invalid Plan
  /// for plans made on the device, whose counts stay in device memory.
  const Plan& host() const;
  bool valid() const { return impl_ != nullptr; }
  /// True for a plan from DeviceGroup::plan_on_device.
  bool on_device() const;
  /// Rows of the rank's receive buffer (plans of either kind).
  int64_t num_recv_rows() const;
  /// Experts this rank holds (plans of either kind): the length of the per-expert arrays.
  int64_t num_local_experts() const;
  /// Plans made on the device: the rows each local expert receives (int64 [local experts],
  /// device memory, written on the rank's stream: what a grouped GEMM reads); nullptr for
  /// plans made on the host (host().tokens_per_expert() has them).
  const int64_t* device_tokens_per_expert() const;
  /// Plans made on the device: the rows each local expert did not receive for want of room
  /// (int64 [local experts], device memory); nullptr for host plans.
  const int64_t* device_dropped_per_expert() const;
  /// Plans made on the device: the rows of each local expert's block (its rows rounded up to
  /// the alignment, or the capacity; int64 [local experts], device memory): block s starts at
  /// the sum of the blocks before it. nullptr for host plans.
  const int64_t* device_padded_tokens_per_expert() const;

  /// Internal: the uploaded programme (defined inside the library).
  struct Impl;
  explicit DevicePlan(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

class DeviceGroup {
 public:
  /// `world_size` logical ranks (1..72, the ranks one NVLink domain reaches) on CUDA device
  /// `device`, grouped into nodes of `ranks_per_node` (0: one node). With several nodes the
  /// plans stage rows between nodes (rank or node dedup, relays) and the group runs that path
  /// too — gather, transfer (a device copy where processes send between nodes), fan-out at
  /// the target; weight rows over, relay sums back — with the direct kernels (at most 71
  /// ranks then). Fails with kUnsupported when CUDA finds no such device.
  static Result<std::unique_ptr<DeviceGroup>> create(int world_size, int device = 0,
                                                     int ranks_per_node = 0);
  /// The same group on the host backend, which runs the engine without a GPU: the same calls,
  /// checks, streams, barriers and programmes, with host memory standing for device memory
  /// (views still say Device::kCuda) and the kernels' per-row step functions run on the CPU.
  /// Its streams run their work lazily — when synchronize() or a wait of another stream
  /// forces them — so that work reading a buffer without waiting for its writer reads stale
  /// bytes. For testing the GPU engine's logic (and code that drives it) without a GPU;
  /// stream(r) is then not a CUDA stream.
  static Result<std::unique_ptr<DeviceGroup>> create_on_host(int world_size,
                                                             int ranks_per_node = 0);
  ~DeviceGroup();
  DeviceGroup(const DeviceGroup&) = delete;
  DeviceGroup& operator=(const DeviceGroup&) = delete;

  int world_size() const;
  /// The CUDA device; -1 for a group on the host backend.
  int device() const;
  /// True for a group from create_on_host().
  bool on_host() const;
  /// Rank `rank`'s stream: its calls run there; inputs written on it are seen by the calls.
  cudaStream_t stream(int rank) const;

  /// The planning collective: plans[r] for rank r's `topk_idx[r]` [T_r, k] (host memory, or
  /// device memory copied to the host first: plans are made by the CPU planner, ranks as
  /// threads of one node), with every rank's programme uploaded.
  Result<std::vector<DevicePlan>> plan(const std::vector<TensorView>& topk_idx, int64_t num_experts,
                                       const ExpertMap& expert_map = {},
                                       const PlanOptions& options = {});

  /// The planning collective on the GPU, without a host synchronisation: every rank's
  /// topk_idx[r] [T_r, k] (int32/int64, contiguous device memory, read on stream(r)) is laid
  /// out by kernels, the ranks' per-expert counts meet in device memory, and each rank's
  /// stores and combine terms are derived there; the call returns after enqueueing. The
  /// receive shapes must be known without the counts:
  ///   - RecvLayout::capacity_bounded(C) with Overflow::kDrop: recv[r] is
  ///     [local experts * C, H]; each expert keeps its first C rows;
  ///   - RecvLayout::expert_major(a): recv[r] is [max_recv_rows, H] on every rank, 0 meaning
  ///     the most that can arrive (every rank's T * k plus the alignment padding: no row is
  ///     ever dropped); blocks as plan()'s, back to back from row 0; rows past the last block
  ///     are not written. With a smaller bound, rows at or past it are dropped and counted in
  ///     device_dropped_per_expert().
  /// Inside a block, rows are in (source rank, token, slot) order: the plans and results equal
  /// plan()'s with the same options bit for bit whenever nothing is dropped. The expert map
  /// may be uneven but not replicated (replica choice runs on the host), and the group must be
  /// one node (kUnsupported otherwise). An id outside [-1, E) is planned as an unused slot;
  /// check_routing() reports it.
  Result<std::vector<DevicePlan>> plan_on_device(const std::vector<TensorView>& topk_idx,
                                                 int64_t num_experts,
                                                 const ExpertMap& expert_map = {},
                                                 const PlanOptions& options = {},
                                                 int64_t max_recv_rows = 0);

  /// Waits for the planning of `plans` and reports the first rank whose routing held an id
  /// outside [-1, E) (kInvalidArgument naming rank, token, slot and id); OK for host plans.
  Status check_routing(const std::vector<DevicePlan>& plans);

  /// Dispatch of every rank: x[r] [T_r, H] (device; strided rows allowed) into recv[r]
  /// [num_recv_rows_r, H] (device, contiguous), expert-major with padding rows (and a capacity
  /// block's unfilled rows) zeroed.
  Status dispatch(const std::vector<DevicePlan>& plans, const std::vector<TensorView>& x,
                  const std::vector<TensorView>& recv);

  /// Dispatch with a companion tensor (fp8 scales, token ids): extra[r] [T_r, E2] (device;
  /// strided rows allowed) rides with x's rows into extra_recv[r] [num_recv_rows_r, E2]
  /// (device, contiguous), one dtype and E2 on every rank; its padding rows are zeroed too.
  Status dispatch(const std::vector<DevicePlan>& plans, const std::vector<TensorView>& x,
                  const std::vector<TensorView>& recv, const std::vector<TensorView>& extra,
                  const std::vector<TensorView>& extra_recv);

  /// Combine of every rank: out[r][t] = sum of topk_weights[r][t, j] * expert_out[d][row] over
  /// token t's rows, fp32 in the fixed order. expert_out[r] [num_recv_rows_r, H] (device;
  /// strided rows allowed) fp32/fp16/bf16, topk_weights[r] [T_r, k] fp32 device, out[r]
  /// [T_r, H] contiguous with expert_out's dtype.
  Status combine(const std::vector<DevicePlan>& plans, const std::vector<TensorView>& expert_out,
                 const std::vector<TensorView>& topk_weights, const std::vector<TensorView>& out);

  /// Waits for every rank's stream; reports the first CUDA error of the work enqueued.
  Status synchronize();

  struct Impl;

 private:
  explicit DeviceGroup(std::unique_ptr<Impl> impl);
  /// A group of `world_size` ranks whose backend `open(impl, device)` sets up.
  static Result<std::unique_ptr<DeviceGroup>> make(int world_size, int ranks_per_node,
                                                   Status (*open)(Impl&, int), int device);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusco::gpu
