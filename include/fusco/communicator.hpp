#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusco/expert_map.hpp"
#include "fusco/options.hpp"
#include "fusco/plan.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "fusco/topology.hpp"
#include "fusco/work.hpp"

namespace fusco {

/// One rank's handle on a group of ranks that shuffle MoE tokens together.
///
/// plan, dispatch and combine are collective: every rank of the group makes the same call
/// (same order, same plan), concurrently, each from its own thread. Every wait inside is bounded
/// by PlanOptions::timeout_ms; a rank that does not arrive makes the others fail with
/// kTimeout naming it, after which the group reports kAborted and must be recreated.
/// Argument errors found on one rank are reported on every rank (the call does nothing) and
/// leave the group usable.
class Communicator {
 public:
  /// `world_size` ranks in this process, one per thread, grouped into nodes by `topology`
  /// (topology.world_size must equal `world_size`). Element r of the result is rank r.
  static Result<std::vector<Communicator>> create_local(int world_size, Topology topology);

  /// Rank `rank` of `topology.world_size` processes of this machine that move rows through a
  /// POSIX shared-memory segment called `name` (for example "/fusco-<job id>"). Every process
  /// passes the same name, handed out by its launcher (MPI, torch.distributed); rank 0 creates
  /// the segment and the others attach, each waiting up to `timeout_ms` for all ranks. The
  /// name is removed once all are attached: use a fresh name for every group. Staging slots
  /// hold FUSCO_SHM_SLOT_BYTES bytes (default 1 MiB): the largest chunk and the largest row.
  /// A peer process that exits makes the others fail with an error naming it.
  static Result<Communicator> create_shared_memory(const std::string& name, int rank,
                                                   Topology topology, int64_t timeout_ms = 60000);

  /// How processes that already share a launcher exchange bytes while a group is created.
  /// Collective: every process passes its bytes and gets every process's bytes in rank order.
  using BootstrapAllgather =
      std::function<Result<std::vector<std::string>>(const std::string& mine)>;

  /// Rank `rank` of `topology.world_size` processes, on one machine or many, connected by UCX
  /// (UCX_TLS chooses shared memory, tcp or RDMA). Worker addresses travel once through
  /// `allgather` (MPI: fusco/mpi.hpp; Python: torch.distributed); every rank then waits up to
  /// `timeout_ms` until all are connected. Staging slots hold FUSCO_SHM_SLOT_BYTES. kUnsupported
  /// when this fusco was built without UCX.
  static Result<Communicator> create_ucx(int rank, Topology topology,
                                         const BootstrapAllgather& allgather,
                                         int64_t timeout_ms = 60000);

  /// Collective over `allgather`: every process brings its own verdict `mine` on a step (such
  /// as joining a group) and all get the same outcome: OK when every verdict is OK; otherwise a
  /// failing process gets its own status and the others the first failing rank's, with its
  /// code and message ("<step> failed on rank r: ..."). The agreement fusco's own group setup
  /// uses (create_from_mpi, the NCCL engine); a launcher of one's own may use it the same way.
  static Status agree_on_step(const BootstrapAllgather& allgather, const Status& mine,
                              const std::string& step);

  /// Moves the group to a new handle. The moved-from one has no group: rank() is -1,
  /// world_size() 0, usable() false, abort() does nothing, and every other call returns
  /// kInvalidArgument saying so.
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();

  /// This rank.
  int rank() const;
  /// Number of ranks in the group.
  int world_size() const;
  /// How the group's ranks are grouped into nodes.
  const Topology& topology() const;

  /// Collective. Plans the shuffle of this rank's tokens.
  ///
  /// `topk_idx` [T, k] int32 or int64 host tensor: expert of each (token, slot), -1 for an
  /// unused slot. `num_experts` E >= 1. `expert_map` gives each expert's owner. T may differ
  /// between ranks (0 allowed); k, E, the map and `options` must agree on all ranks.
  /// Returns the plan; its receive layout is expert-major, rows sorted by (local expert,
  /// source rank, source token, slot).
  Result<Plan> plan(const TensorView& topk_idx, int64_t num_experts, const ExpertMap& expert_map,
                    const PlanOptions& options);
  /// Same, with PlanOptions::from_env().
  Result<Plan> plan(const TensorView& topk_idx, int64_t num_experts,
                    const ExpertMap& expert_map = ExpertMap());

  /// Collective. Sends each row of `x` [T, H] to its experts and writes them into `recv`
  /// [plan.num_recv_rows(), H] (same dtype as x) in the plan's receive layout (padding rows
  /// zeroed). Any dtype; x may have strided rows (TensorView::row_stride). H and dtype must
  /// agree on all ranks.
  Status dispatch(const Plan& plan, const TensorView& x, const TensorView& recv);

  /// Collective. dispatch(plan, x, recv), with a companion per-row tensor `extra` [T, E2]
  /// (any dtype: fp8 scales [T, H/128] fp32, token ids, ...) travelling with each row into
  /// `extra_recv` [plan.num_recv_rows(), E2]: row r of extra_recv belongs to the same source
  /// token as row r of recv (padding rows are zero in both). E2 and its dtype must agree on
  /// all ranks. The two travel in the same chunks: no second exchange. x and extra may have
  /// strided rows.
  Status dispatch(const Plan& plan, const TensorView& x, const TensorView& recv,
                  const TensorView& extra, const TensorView& extra_recv);

  /// Not collective. A receive buffer for dispatch(plan, x, recv) that the library owns:
  /// [plan.num_recv_rows(), hidden] of `dtype`, in memory this rank's peers reach. Between
  /// processes of one machine (create_shared_memory, create_from_mpi over shared memory)
  /// dispatch stores each row straight into it, once; dispatch into a buffer of one's own
  /// lands the rows in library memory first and copies them out (and combine copies an
  /// expert_out its peers cannot reach). Threads reach any memory: there it is plain memory.
  /// The view stays valid, with what the last dispatch wrote, until the next recv_buffer
  /// call on this communicator (which may move it) or the communicator's end: copy what
  /// must outlive that (autograd's saved inputs, for example).
  Result<TensorView> recv_buffer(const Plan& plan, DType dtype, int64_t hidden);

  /// Collective. Brings expert outputs back: `out`[t] = sum over valid slots j of
  /// `topk_weights`[t, j] * `expert_out`[row(t, j)], accumulated in fp32 in the plan's fixed
  /// order and cast to the dtype of expert_out. `expert_out` [num_recv_rows, H] fp32, fp16 or
  /// bf16; `topk_weights` [T, k] fp32; `out` [T, H] with the dtype of expert_out. A token
  /// without valid slots gets a zero row.
  Status combine(const Plan& plan, const TensorView& expert_out, const TensorView& topk_weights,
                 const TensorView& out);

  /// Collective, asynchronous: starts dispatch(plan, x, recv) on this communicator's progress
  /// thread and returns at once; Work::wait() gives its status. Meanwhile the caller may
  /// compute (a shared expert, the next micro-batch) but must not touch x or recv. Calls of
  /// one communicator run in the order they were made: a later plan, dispatch or combine
  /// (asynchronous or not) starts after this one finished.
  Work dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv);
  /// Collective, asynchronous: the companion-tensor dispatch, as dispatch_async.
  Work dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv,
                      const TensorView& extra, const TensorView& extra_recv);
  /// Collective, asynchronous: combine(plan, expert_out, topk_weights, out), as dispatch_async.
  Work combine_async(const Plan& plan, const TensorView& expert_out, const TensorView& topk_weights,
                     const TensorView& out);

  /// False once an earlier failure (a timeout, a dead peer, abort()) has broken the group;
  /// recreate it then.
  bool usable() const;

  /// Breaks the group on purpose, for example from a watchdog thread when a peer is known to
  /// be gone: every rank waiting inside plan, dispatch or combine (this one included, even
  /// while another thread is inside such a call) returns kAborted carrying "rank r aborted
  /// the group: `reason`" at once instead of waiting for the timeout; the group must then be
  /// recreated. Safe from any thread; not collective.
  void abort(const std::string& reason);

  class Impl;

 private:
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusco
