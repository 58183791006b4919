#pragma once

// What a fusco::gpu::NcclCommunicator holds (its NCCL communicator, windows, device
// communicator and LSA peer tables) and the host-side agreement helpers its collective calls
// use. Shared by the files that implement its calls.

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fusco/nccl.hpp"
#include "gpu/cuda_status.hpp"
#include "gpu/device_checks.hpp"
#include "gpu/device_plan_impl.hpp"
#include "gpu/nccl_gin.hpp"
#include "gpu/nccl_ops.hpp"
#include "gpu/nccl_send_recv.hpp"
#include "gpu/nccl_staged.hpp"
#include "gpu/nccl_status.hpp"
#include "gpu/nccl_watch.hpp"
#include "gpu/node_barrier.hpp"
#include "transport/agreement.hpp"

namespace fusco::gpu {

// The NCCL engine's host-side agreements run the one agreement protocol (transport/agreement)
// over the launcher's allgather: a collective step that follows is entered by every rank or by
// none, and a rank that failed is named, with its code and message, on every rank.
inline Status agree(const Communicator::BootstrapAllgather& allgather, const Status& mine,
                    const char* step) {
  return transport::agree_on_step(allgather, mine, step);
}

// A field for a call's agreement whose value prints as a dtype's name.
inline transport::AgreedField dtype_field(const char* name, DType dtype) {
  return {name, static_cast<int64_t>(dtype),
          [](int64_t value) { return std::string(dtype_name(static_cast<DType>(value))); }};
}

inline TensorView window_view(void* base, DType dtype, int64_t rows, int64_t hidden) {
  TensorView view = TensorView::host(base, dtype, {rows, hidden});
  view.device = Device::kCuda;
  return view;
}

struct NcclCommunicator::Impl {
  Impl(Communicator host_group, const NcclOps& backend)
      : host(std::move(host_group)), nccl(&backend), staged_scratch(backend.device()) {
    watch.watch_over(host.rank(), &comm, backend);
    scratch.ops = &backend.device();
  }
  Communicator host;
  const NcclOps* nccl;  ///< NCCL's operations (or the host backend's), and the device's
  Communicator::BootstrapAllgather allgather;
  NcclOptions options;
  int rank = 0;
  int world = 0;
  ncclComm_t comm = nullptr;
  /// With several nodes: this rank's node as a communicator of its own (ncclCommInitRank with
  /// the node's unique id), on which the windows, their LSA addresses and the device
  /// communicator live. NCCL's device communicator over the whole world would turn GIN on
  /// across nodes (failing where the network has none) and make its LSA team the gcd of the
  /// node sizes (refusing uneven nodes); a node's own communicator does neither. One node:
  /// nullptr (`comm` serves).
  ncclComm_t node_comm = nullptr;
  size_t window_bytes = 0;
  void* recv_window = nullptr;    ///< recv_symmetric.base, or recv_plain's memory
  void* expert_window = nullptr;  ///< expert_symmetric.base, or expert_plain's memory
  SymmetricWindow recv_symmetric;
  SymmetricWindow expert_symmetric;
  /// The device communicator of lsa_comm(): the device API's check and LSA team (barriers are
  /// fusco's own, bounded).
  ncclDevComm* dev_comm = nullptr;
  /// With inter_node = gin: the world's device communicator, with GIN contexts and signals.
  ncclDevComm* gin_dev_comm = nullptr;
  core::PeerTable recv_peers{};
  core::PeerTable expert_peers{};
  /// The bounded barrier's arrival slots: a small symmetric window, zeroed at creation.
  SymmetricWindow sync_window;
  core::PeerTable sync_peers{};
  std::unique_ptr<NodeBarrier> bounded;
  /// NcclInterNode::kGin with several nodes: the staging window and its put bookkeeping.
  std::unique_ptr<GinTransfer> gin;
  cudaStream_t stream = nullptr;
  bool device_api = false;       ///< false: the ncclSend/ncclRecv path
  DeviceBuffer recv_plain;       ///< the send/recv path's receive buffer
  DeviceBuffer expert_plain;     ///< and its expert-output buffer
  SendRecvBuffers scratch;       ///< and its send and staging buffers
  StagedScratch staged_scratch;  ///< Staging of the rows between nodes (several nodes).
  /// plan_on_device: a symmetric window of two count matrices (calls alternate between them,
  /// so a rank publishing the next plan's counts never overwrites a matrix a slower peer
  /// still reads), registered on first use and grown when a map needs more.
  SymmetricWindow counts_window;
  size_t counts_bytes = 0;
  core::PeerTable counts_peers{};
  int64_t device_plans = 0;  ///< plan_on_device calls so far: the next matrix is their parity.
  /// The ncclSend/ncclRecv exchanges in flight and their deadlines; aborts `comm` (and sets it
  /// to nullptr) once one is overdue.
  NcclWatch watch;
  /// The longest PlanOptions::timeout_ms of the calls so far: what the destructor waits.
  int64_t longest_timeout_ms = PlanOptions().timeout_ms;

  ~Impl() {
    if (stream != nullptr) {
      // Bounded: an exchange whose peer is gone aborts the communicator instead of hanging.
      (void)watch.wait(stream, longest_timeout_ms, "destroying the NcclCommunicator");
      ops().destroy_stream(stream);
    }
    if (device_api) release_device_api();
    if (node_comm != nullptr) nccl->destroy(node_comm);
    if (comm != nullptr) nccl->destroy(comm);
  }

  const DeviceOps& ops() const { return nccl->device(); }

  /// The communicator of the windows and their load/store addresses: the node's.
  ncclComm_t lsa_comm() const { return node_comm != nullptr ? node_comm : comm; }

  /// `rank`'s rank in lsa_comm() (it must be on this rank's node).
  int lsa_comm_rank(int of) const {
    return node_comm != nullptr ? of - host.topology().node_first_rank(host.topology().node_of(of))
                                : of;
  }

  // This rank's exchanges of a call whose PlanOptions::timeout_ms is `timeout_ms`.
  NcclLane lane(int64_t timeout_ms) {
    longest_timeout_ms = std::max(longest_timeout_ms, timeout_ms);
    return NcclLane{nccl, comm, stream, &watch, timeout_ms};
  }

  // The device-API path: symmetric windows, device communicator, LSA pointers of this rank's
  // node. Every step's verdict is agreed on by all ranks; a failure leaves what was made for
  // release_device_api.
  Status set_up_device_api() {
    if (several_nodes()) FUSCO_RETURN_IF_ERROR(open_node_comm());
    FUSCO_RETURN_IF_ERROR(open_window(window_bytes, recv_symmetric, "receive window"));
    FUSCO_RETURN_IF_ERROR(open_window(window_bytes, expert_symmetric, "expert-output window"));
    recv_window = recv_symmetric.base;
    expert_window = expert_symmetric.base;
    FUSCO_RETURN_IF_ERROR(agree(allgather, check_device_comms(), "ncclDevCommCreate"));

    FUSCO_RETURN_IF_ERROR(agree(allgather, set_up_sync_window(), "barrier window"));
    if (with_gin()) {
      Result<std::unique_ptr<GinTransfer>> staging =
          GinTransfer::create(comm, window_bytes, rank, world);
      const Status made_staging = staging.status();
      if (staging.ok()) gin = std::move(staging).value();
      FUSCO_RETURN_IF_ERROR(agree(allgather, made_staging, "staging window"));
    }

    // Every node peer's LSA address of the windows (on the stream create() made).
    Status pointers = lsa_peers(recv_symmetric.handle, recv_peers);
    if (pointers.ok()) pointers = lsa_peers(expert_symmetric.handle, expert_peers);
    if (pointers.ok()) pointers = lsa_peers(sync_window.handle, sync_peers);
    return agree(allgather, pointers, "LSA pointers");
  }

  bool with_gin() const { return options.inter_node == NcclInterNode::kGin && several_nodes(); }

  // Collective: the unique id rank `maker` makes (every rank's id goes through the
  // allgather, as in one step every rank proposes; each takes `maker`'s); `step` names it.
  Result<ncclUniqueId> unique_id_of(int maker, const char* step) const {
    static_assert(sizeof(ncclUniqueId::internal) <= transport::kMaxAgreementPayload);
    ncclUniqueId id{};
    transport::Proposal proposal;
    proposal.kind = transport::CallKind::kSetup;
    proposal.local = rank == maker ? nccl->unique_id(&id) : Status();
    proposal.payload = id.internal;
    proposal.payload_bytes = sizeof(id.internal);
    std::vector<char> ids(static_cast<size_t>(world) * sizeof(id.internal));
    FUSCO_RETURN_IF_ERROR(transport::agree(allgather, world, proposal,
                                           reinterpret_cast<std::byte*>(ids.data()), step));
    std::memcpy(id.internal, ids.data() + static_cast<size_t>(maker) * sizeof(id.internal),
                sizeof(id.internal));
    return id;
  }

  // Collective: node_comm, from a unique id the node's first rank makes.
  Status open_node_comm() {
    const Topology& topology = host.topology();
    const int first = topology.node_first_rank(topology.node_of(rank));
    Result<ncclUniqueId> id = unique_id_of(first, "ncclGetUniqueId (node)");
    FUSCO_RETURN_IF_ERROR(id.status());
    return agree(allgather,
                 nccl->init_rank(&node_comm, topology.node_size(topology.node_of(rank)), id.value(),
                                 rank - first),
                 "ncclCommInitRank (node)");
  }

  // The device communicators: lsa_comm()'s, whose LSA team must hold this rank's node, and
  // with GIN the world's, which must offer GIN. Local: the caller agrees on the verdict.
  Status check_device_comms() {
    int lsa_size = 0;
    int gin_contexts = 0;
    FUSCO_RETURN_IF_ERROR(
        nccl->open_device_comm(lsa_comm(), 0, &dev_comm, &lsa_size, &gin_contexts));
    for (const int peer : node_peers()) {
      if (nccl->lsa_rank_of(lsa_comm(), lsa_comm_rank(peer)) < 0) {
        return Status(StatusCode::kUnsupported,
                      "rank " + std::to_string(peer) + ", on rank " + std::to_string(rank) +
                          "'s node of the host topology, is not load/store accessible from it "
                          "(NCCL's LSA team holds " +
                          std::to_string(lsa_size) +
                          " ranks): a node must be ranks that share an NVLink domain");
      }
    }
    if (!with_gin()) return Status();
    int world_lsa = 0;
    FUSCO_RETURN_IF_ERROR(nccl->open_device_comm(comm, gin_signal_count(world), &gin_dev_comm,
                                                 &world_lsa, &gin_contexts));
    if (gin_contexts > 0) return Status();
    return Status(StatusCode::kUnsupported,
                  "options.inter_node = gin, but NCCL offers no GIN on rank " +
                      std::to_string(rank) +
                      " (no network it can drive from the GPU); inter_node = sendrecv works on "
                      "any network");
  }

  // Collective: a symmetric window of `bytes`, allocated, then registered (collective in
  // NCCL: every rank must come, so all agree that every allocation worked first).
  Status open_window(size_t bytes, SymmetricWindow& window, const std::string& what) {
    FUSCO_RETURN_IF_ERROR(agree(allgather, nccl->allocate_window(bytes, &window, what),
                                (what + " allocation").c_str()));
    return agree(allgather, nccl->register_window(lsa_comm(), bytes, &window, what),
                 (what + " registration").c_str());
  }

  // The bounded barrier: its symmetric window of arrival slots, zeroed before any peer can
  // store into it (every rank agrees on this step before the first barrier), and its fault
  // record. The window's steps are agreed on; the caller agrees on the verdict.
  Status set_up_sync_window() {
    constexpr size_t kBytes = NCCL_WIN_REQUIRED_ALIGNMENT;
    static_assert(kBytes >= sizeof(uint64_t) * core::kMaxDirectPeers);
    FUSCO_RETURN_IF_ERROR(open_window(kBytes, sync_window, "barrier window"));
    // Zeroed on the stream every barrier runs on, and waited for (the default stream does
    // not order with it).
    FUSCO_RETURN_IF_ERROR(ops().zero(sync_window.base, kBytes, stream, "barrier window"));
    FUSCO_RETURN_IF_ERROR(ops().synchronize(stream, "barrier window"));
    const std::vector<int> peers = node_peers();
    Result<std::unique_ptr<NodeBarrier>> made =
        NodeBarrier::create(ops(), rank, peers.front(), static_cast<int>(peers.size()));
    FUSCO_RETURN_IF_ERROR(made.status());
    bounded = std::move(made).value();
    return Status();
  }

  bool several_nodes() const { return host.topology().num_nodes() > 1; }

  // The ranks of this rank's node in the host topology: the ranks it stores into and loads
  // from (rows between nodes are staged through ncclSend/ncclRecv).
  std::vector<int> node_peers() const {
    const Topology& topology = host.topology();
    const int first = topology.node_first_rank(topology.node_of(rank));
    std::vector<int> peers;
    for (int p = first; p < first + topology.node_size(topology.node_of(rank)); ++p) {
      peers.push_back(p);
    }
    return peers;
  }

  // Every rank's LSA address of `window` (offset 0 of its part), resolved on the device once:
  // the peer table of the direct kernels (pitches left 0). Ranks of other nodes get no
  // address; kUnsupported for a rank of this node that this one cannot reach by load/store.
  // Local: the caller agrees on the verdict.
  Status lsa_peers(ncclWindow_t window, core::PeerTable& table) const {
    const Topology& topology = host.topology();
    std::vector<int> lsa_of;
    lsa_of.reserve(static_cast<size_t>(world));
    for (int p = 0; p < world; ++p) {
      lsa_of.push_back(topology.same_node(p, rank) ? nccl->lsa_rank_of(lsa_comm(), lsa_comm_rank(p))
                                                   : -1);
    }
    std::vector<void*> addresses;
    FUSCO_RETURN_IF_ERROR(nccl->lsa_addresses(window, lsa_of, stream, &addresses));
    table = core::PeerTable{};
    for (const int p : node_peers()) {
      table.base[p] = static_cast<char*>(addresses[static_cast<size_t>(p)]);
      if (lsa_of[static_cast<size_t>(p)] < 0 || table.base[p] == nullptr) {
        return Status(StatusCode::kUnsupported, "rank " + std::to_string(p) +
                                                    " is not load/store accessible from rank " +
                                                    std::to_string(rank));
      }
    }
    return Status();
  }

  // Collective: a count window of at least `bytes`. Every rank's earlier planning has ended
  // (each waits for its stream and all agree) before an old window goes.
  Status ensure_counts_window(size_t bytes) {
    if (bytes <= counts_bytes) return Status();
    constexpr size_t kAlign = NCCL_WIN_REQUIRED_ALIGNMENT;
    const size_t size = (std::max<size_t>(bytes, size_t{64} << 10) + kAlign - 1) / kAlign * kAlign;
    FUSCO_RETURN_IF_ERROR(agree(
        allgather,
        watch.wait(stream, longest_timeout_ms, "count window (waiting for the earlier calls)"),
        "count window"));
    release_counts_window();
    FUSCO_RETURN_IF_ERROR(open_window(size, counts_window, "count window"));
    FUSCO_RETURN_IF_ERROR(
        agree(allgather, lsa_peers(counts_window.handle, counts_peers), "LSA pointers"));
    counts_bytes = size;
    return Status();
  }

  // After an abort (comm is nullptr) the registrations went with the communicator; the memory
  // is still this rank's to free.
  void release_counts_window() {
    nccl->close_window(lsa_comm(), &counts_window);
    counts_bytes = 0;
  }

  void release_device_api() {
    if (comm == nullptr && node_comm != nullptr) {  // the world was aborted: the node goes too
      nccl->abort(node_comm);
      node_comm = nullptr;
    }
    if (gin != nullptr && comm == nullptr) gin->communicator_aborted();
    gin.reset();
    release_counts_window();
    if (comm != nullptr && gin_dev_comm != nullptr) nccl->close_device_comm(comm, gin_dev_comm);
    gin_dev_comm = nullptr;
    if (lsa_comm() != nullptr && dev_comm != nullptr) {
      nccl->close_device_comm(lsa_comm(), dev_comm);
    }
    dev_comm = nullptr;
    for (SymmetricWindow* window : {&recv_symmetric, &expert_symmetric, &sync_window}) {
      nccl->close_window(lsa_comm(), window);
    }
    recv_window = expert_window = nullptr;
    bounded.reset();
  }

  // This rank's part of a staged call of `plan` (which must stage rows).
  NcclStagedRank staged_rank(const DevicePlan& plan) {
    return NcclStagedRank{*plan.impl().staged, staged_scratch, rank,
                          lane(plan.impl().data().options.timeout_ms)};
  }

  // The scratch a call of `plan` needs (see reserve_staged; rows of the ncclSend/ncclRecv
  // path alike), grown before the ranks agree on the call: a rank that cannot grow it fails
  // the call on every rank instead of leaving its peers waiting in NCCL.
  Status reserve(const DevicePlan& plan, int64_t row_bytes, int64_t extra_bytes,
                 int64_t combine_row_bytes, int64_t topk) {
    if (plan.impl().staged != nullptr && gin != nullptr) {
      return gin->check_fits(plan.impl().staged->streams, row_bytes, extra_bytes, combine_row_bytes,
                             topk);
    }
    if (plan.impl().staged != nullptr) {
      return reserve_staged(staged_rank(plan), row_bytes, extra_bytes, combine_row_bytes, topk);
    }
    if (device_api) return Status();
    const SendRecvProgramme& lists = *plan.impl().send_recv;
    const int64_t widest = std::max({row_bytes, extra_bytes, combine_row_bytes});
    return scratch.reserve(static_cast<size_t>(lists.send_rows * widest),
                           static_cast<size_t>(lists.stage_rows * widest));
  }

  // A barrier of this rank's node on the stream, each wait bounded by `timeout_ms`
  // (PlanOptions::timeout_ms of the call); `what` names the step if a peer does not come.
  Status barrier(int64_t timeout_ms, const std::string& what) {
    longest_timeout_ms = std::max(longest_timeout_ms, timeout_ms);
    return bounded->sync(sync_peers, timeout_ms, what, stream);
  }

  // kAborted once a barrier wait ran out (see NodeBarrier::health), kTimeout or kAborted once
  // an ncclSend/ncclRecv exchange was overdue or NCCL failed (see NcclWatch), else OK.
  Status health() {
    FUSCO_RETURN_IF_ERROR(bounded != nullptr ? bounded->health() : Status());
    return watch.check();
  }

  // With check_calls: every rank's local verdict and its rows' shape (`fields`: hidden size,
  // dtypes) agree before any rank enters a barrier, so a bad argument on one rank is an error
  // on all, never a GPU-side wait.
  Status agree_on_call(const Status& mine, std::vector<transport::AgreedField> fields,
                       transport::CallKind kind) const {
    if (!options.check_calls) {
      return mine;
    }
    transport::Proposal proposal;
    proposal.kind = kind;
    proposal.local = mine;
    proposal.fields = std::move(fields);
    return transport::agree(allgather, world, proposal, nullptr,
                            transport::call_kind_name(static_cast<int32_t>(kind)));
  }

  /// kUnsupported while `stream` is being captured into a CUDA graph: a call's barrier
  /// epochs, agreement and waits are host work and host values that a replay would not redo.
  Status not_capturing(const char* call) const {
    Result<bool> capturing = ops().capturing(stream, call);
    FUSCO_RETURN_IF_ERROR(capturing.status());
    if (!capturing.value()) return Status();
    return Status(StatusCode::kUnsupported,
                  std::string(call) +
                      ": stream() is being captured into a CUDA graph; NcclCommunicator calls "
                      "cannot be captured (their barrier epochs and checks are host values a "
                      "replay would repeat): make the call outside the capture");
  }

  Status check_plan(const DevicePlan& plan) const {
    if (!plan.valid() || plan.impl().owner != this) {
      return Status(StatusCode::kInvalidArgument,
                    "plan is not from this NcclCommunicator's plan() or plan_on_device()");
    }
    return Status();
  }

  // Where a companion tensor's rows start in the receive window: after room for every
  // rank's x rows (the same offset on all ranks), 256-byte aligned.
  static int64_t extra_offset(const DevicePlan& plan, int64_t row_bytes) {
    return (plan.impl().group_max_recv_rows * row_bytes + 255) / 256 * 256;
  }

  // Every rank's window must hold `plan`'s rows of `row_bytes` (plus their companion rows of
  // `extra_bytes`): checked with the most rows any rank receives, so all ranks agree.
  Status check_window(const DevicePlan& plan, int64_t row_bytes, int64_t extra_bytes,
                      const char* arg) const {
    const int64_t rows = plan.impl().group_max_recv_rows;
    const auto window = static_cast<int64_t>(window_bytes);
    bool fits = row_bytes == 0 || rows <= window / row_bytes;
    if (fits && extra_bytes > 0) {
      const int64_t left = window - extra_offset(plan, row_bytes);
      fits = left >= 0 && rows <= left / extra_bytes;
    }
    if (!fits) {
      return Status(
          StatusCode::kInvalidArgument,
          std::string(arg) + ": a rank receives " + std::to_string(rows) + " rows of " +
              std::to_string(row_bytes) + " bytes" +
              (extra_bytes > 0 ? " plus " + std::to_string(extra_bytes) + " companion bytes"
                               : std::string()) +
              ", more than the " + std::to_string(window_bytes) +
              "-byte window holds (NcclOptions::window_bytes, FUSCO_NCCL_WINDOW_BYTES)");
    }
    return Status();
  }
};

}  // namespace fusco::gpu
