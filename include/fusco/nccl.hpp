#pragma once

// The GPU engine across processes, one GPU each, over NCCL's device API (built with
// FUSCO_WITH_NCCL; link fusco::fusco_gpu). Every rank owns two symmetric windows
// (ncclMemAlloc + ncclCommWindowRegister): one receives dispatched rows, one holds expert
// outputs. Dispatch stores each row of x straight into its final expert-major place in the
// destination's receive window through NCCL's LSA (load/store) pointers, over NVLink; combine
// reads every term straight from the owner's expert-output window and reduces in the plan's
// fixed order. The kernels are the one-GPU engine's (fusco/gpu.hpp); only the peer table
// and the barrier (fusco's bounded barrier over a third, small window) differ.
//
// Where the device API is unavailable (no symmetric memory, ranks without load/store access
// to each other) the rows move by grouped ncclSend/ncclRecv instead (NcclPath): same results.
//
// Several nodes (the host Communicator's topology): rows inside a node move as above over LSA;
// rows between nodes are staged — gathered per target (a relay of the destination node under
// node dedup), sent by grouped ncclSend/ncclRecv (or put by the GPU over GIN: inter_node),
// fanned out by the relay into its node's receive windows; combine returns one partial sum per
// token and node the same way. A node must be ranks of one LSA (NVLink) domain, and needs the
// device-API path. Planning runs on the host, through a host Communicator of the same
// processes, or on the GPUs (plan_on_device, one node).

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>

#include "fusco/communicator.hpp"
#include "fusco/gpu.hpp"

namespace fusco::gpu {

class NcclOps;  // the NCCL operations of a backend (src/gpu/nccl_ops.hpp)

/// How rows move between the GPUs.
enum class NcclPath : int32_t {
  /// The device API where every rank reaches every other by load/store, else kSendRecv.
  kAuto = 0,
  /// Direct stores and loads through NCCL's LSA pointers; create() fails where unavailable.
  kDeviceApi = 1,
  /// Grouped ncclSend/ncclRecv of per-destination blocks, gathered before and placed after
  /// (one more pass over the rows each way; works on any NCCL communicator).
  kSendRecv = 2,
};

/// How rows move between nodes (several nodes in the host topology, device-API path).
enum class NcclInterNode : int32_t {
  /// Grouped ncclSend/ncclRecv, launched by the host between the kernels.
  kSendRecv = 0,
  /// GPU-initiated: ncclGin::put from this rank's part of a symmetric staging window straight
  /// into the peer's part, a signal per put, every wait bounded — no host call between the
  /// kernels. Needs GIN (a network NCCL drives from the GPU): create() fails with kUnsupported
  /// where NCCL offers none. Costs a third window (the staging window, window_bytes).
  kGin = 1,
};

struct NcclOptions {
  /// Environment: FUSCO_NCCL_PATH (auto, device or sendrecv).
  NcclPath path = NcclPath::kAuto;
  /// Bytes of each rank's receive window and of its expert-output window, the same on every
  /// rank (rounded up to NCCL's 4 KiB window alignment). Environment: FUSCO_NCCL_WINDOW_BYTES.
  int64_t window_bytes = int64_t{1} << 30;
  /// Check on every call that all ranks pass the same hidden size and dtype (one host
  /// allgather per call). Environment: FUSCO_NCCL_CHECK_CALLS (0 or 1).
  bool check_calls = true;
  /// Between nodes. Environment: FUSCO_NCCL_INTER_NODE (sendrecv or gin).
  NcclInterNode inter_node = NcclInterNode::kSendRecv;

  /// The defaults with the environment applied (an unparsable value is an error naming it).
  static Result<NcclOptions> from_env();
};

class NcclCommunicator {
 public:
  /// Collective over the processes of `host` (one per GPU; this process's current CUDA device
  /// is its GPU): an NCCL communicator from a unique id that rank 0 makes and `allgather`
  /// hands out, the two windows, a device communicator (ncclDevCommCreate) and every peer's
  /// LSA pointer into both windows for the ranks of its node (`host`'s topology). With
  /// several nodes the windows and the device communicator are a node communicator's (one
  /// per node of `host`'s topology), so nodes may differ in size and no GIN is needed unless
  /// inter_node = gin asks for it.
  /// kUnsupported on the device-API path when a rank of this rank's node is not load/store
  /// accessible from it, and for several nodes on the ncclSend/ncclRecv path.
  static Result<std::unique_ptr<NcclCommunicator>> create(
      Communicator host, Communicator::BootstrapAllgather allgather,
      const NcclOptions& options = NcclOptions());
  /// The same communicator on the host backend, for tests without a GPU: the ranks are
  /// threads of this process (each with its own Communicator of `host`'s group and the
  /// group's allgather), device memory is host memory (TensorView::device kCuda, pointing to
  /// host memory), streams are host queues that run lazily (DeviceGroup::create_on_host), the
  /// windows are host memory every rank of the group addresses directly, ncclSend/ncclRecv
  /// are copies between the ranks, and the kernels run their per-row steps on the CPU. Every
  /// line of orchestration is the one create() runs. No GIN (inter_node = gin is refused with
  /// kUnsupported, as on a network without it); stream() is a host backend stream (pass it to
  /// nothing of CUDA's).
  static Result<std::unique_ptr<NcclCommunicator>> create_on_host(
      Communicator host, Communicator::BootstrapAllgather allgather,
      const NcclOptions& options = NcclOptions());
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const;
  int world_size() const;
  /// The path create() chose (kDeviceApi or kSendRecv).
  NcclPath path() const;
  /// The stream every call of this rank runs on: make it wait for the producers of x,
  /// topk_weights and expert_out; results are ready on it.
  cudaStream_t stream() const;
  /// The NCCL communicator (nullptr once aborted after an overdue exchange; see synchronize).
  ncclComm_t nccl() const;
  /// True for a communicator from create_on_host.
  bool on_host() const;

  /// OK while every GPU barrier has completed in time. Each barrier wait on the GPU is bounded
  /// by the call's PlanOptions::timeout_ms; one that runs out (a peer that died or hangs)
  /// gives up and is recorded, and from then on this returns kAborted naming the peer, the
  /// step and the timeout — and so does every call, on every rank that saw it: that call's
  /// results are not valid and the communicator must be recreated. Read without a
  /// synchronisation (a fault shows once the stream reached it: after synchronising, surely).
  Status health() const;

  /// Waits on the host until everything enqueued on stream() so far has run, and returns
  /// health() — every wait bounded: the GPU barriers and GIN waits by the calls'
  /// PlanOptions::timeout_ms (they give up, record the peer, and the stream moves on), the
  /// ncclSend/ncclRecv exchanges likewise (NCCL has no timeout of its own: each exchange is
  /// marked on the stream, and one still pending past its call's timeout aborts the NCCL
  /// communicator, which ends the GPU's wait, and is reported as kTimeout naming the step and
  /// its peers), and the whole wait by `timeout_ms` (0: the longest timeout of the calls so
  /// far; kTimeout naming this rank). Use it where cudaStreamSynchronize(stream()) would wait
  /// for a dead peer without end. kInvalidArgument for a negative timeout_ms.
  Status synchronize(int64_t timeout_ms = 0);

  /// Collective: the plan of `topk_idx` [T, k] (host memory, or device memory copied to the
  /// host first, synchronously, once the work queued on stream() has run — the router's,
  /// waited for up to options.timeout_ms), its programme uploaded.
  Result<DevicePlan> plan(const TensorView& topk_idx, int64_t num_experts,
                          const ExpertMap& expert_map = {},
                          const PlanOptions& options = PlanOptions());

  /// Collective: planning on the GPU without a host synchronisation, under the rules of
  /// DeviceGroup::plan_on_device (a capacity layout that drops, or an expert-major layout with
  /// max_recv_rows rows per rank, 0 meaning the most that can arrive; no replicas). This
  /// rank's topk_idx [T, k] (contiguous int32/int64 device memory, read on stream()) is laid
  /// out by kernels, its per-expert counts are stored into every rank's count matrix through
  /// LSA pointers, and after an LSA barrier its stores and combine terms are derived on the
  /// device. The host only agrees on the arguments (one allgather, which also carries every
  /// rank's T). Needs the device-API path (kUnsupported on kSendRecv). The first call
  /// registers a small symmetric window for the count matrices (collective, like the call).
  /// An id outside [-1, E) is planned as an unused slot; check_routing() reports it.
  Result<DevicePlan> plan_on_device(const TensorView& topk_idx, int64_t num_experts,
                                    const ExpertMap& expert_map = {},
                                    const PlanOptions& options = PlanOptions(),
                                    int64_t max_recv_rows = 0);

  /// Waits for the planning of `plan` on stream() and reports an id outside [-1, E) in this
  /// rank's routing (kInvalidArgument naming token, slot and id); OK for host plans. Local.
  Status check_routing(const DevicePlan& plan);

  /// Collective: x [T, H] (device; strided rows allowed) into every destination's receive
  /// window. Returns this rank's received rows [num_recv_rows, H], expert-major: a view of its
  /// receive window, valid until its next dispatch.
  /// With `extra_recv`, a companion tensor extra [T, E2] (device; strided rows allowed: fp8
  /// scales, token ids) rides with x's rows; *extra_recv becomes its received rows
  /// [num_recv_rows, E2], also in the receive window.
  /// Streams: the call runs on stream(); work that writes x (or extra) must be on stream() or
  /// ordered before the call (an event stream() waits for), and work that reads the returned
  /// window on another stream must wait for an event recorded on stream() after the call —
  /// and must be done before the next dispatch (the window is reused). Not capturable into a
  /// CUDA graph (kUnsupported while stream() is capturing).
  Result<TensorView> dispatch(const DevicePlan& plan, const TensorView& x,
                              const TensorView& extra = TensorView(),
                              TensorView* extra_recv = nullptr);

  /// Where to write the expert outputs of `plan`'s rows so that combine reads them in place:
  /// [num_recv_rows, hidden] of `dtype`, a view of this rank's expert-output window.
  Result<TensorView> expert_out_buffer(const DevicePlan& plan, int64_t hidden, DType dtype);

  /// Collective: out[t] = sum of topk_weights[t, j] * (row of token t, slot j), fp32 in the
  /// fixed order, read from the owners' expert-output windows. expert_out [num_recv_rows, H]
  /// (device; strided rows allowed) fp32/fp16/bf16; when it is not expert_out_buffer() it is
  /// first copied there, so it must lie outside the window (kInvalidArgument for another view
  /// into it). topk_weights [T, k] fp32 and out [T, H] (expert_out's dtype): device.
  /// Streams as dispatch's: writers of expert_out and topk_weights on stream() or ordered
  /// before the call; the expert-output window is read by peers until the call's last
  /// barrier, so write the next expert outputs on stream() (or after an event recorded on it
  /// after the call). Not capturable into a CUDA graph.
  Status combine(const DevicePlan& plan, const TensorView& expert_out,
                 const TensorView& topk_weights, const TensorView& out);

  struct Impl;

 private:
  explicit NcclCommunicator(std::unique_ptr<Impl> impl);
  static Result<std::unique_ptr<NcclCommunicator>> make(Communicator host,
                                                        Communicator::BootstrapAllgather allgather,
                                                        const NcclOptions& options,
                                                        const NcclOps& nccl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusco::gpu
