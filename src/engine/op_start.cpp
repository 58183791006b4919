#include "engine/op_start.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "fusco/dtype.hpp"

namespace fusco::engine {

namespace {

std::string dtype_text(int64_t code) { return dtype_name(static_cast<DType>(code)); }
std::string columns_text(int64_t columns) {
  return columns < 0 ? std::string("none") : std::to_string(columns);
}

// What every rank's call must share: the plan and the tensors' shape and type.
std::vector<transport::AgreedField> agreed_fields(const OpHeader& mine) {
  return {
      {"plan's group", static_cast<int64_t>(mine.group_id), transport::show_hex},
      {"plan number (ranks must pass the same plan)", static_cast<int64_t>(mine.plan_sequence)},
      {"hidden size", mine.hidden},
      {"dtype", mine.dtype, dtype_text},
      {"companion tensor (extra) columns", mine.extra_hidden, columns_text},
      {"companion tensor (extra) dtype", mine.extra_hidden < 0 ? 0 : mine.extra_dtype, dtype_text},
  };
}

// Live ranks notice a broken group within one progress step (about one chunk).
std::chrono::milliseconds quiet_grace(int64_t timeout_ms) {
  return std::chrono::milliseconds(std::min<int64_t>(timeout_ms, 1000));
}

// `failure`, returned once the other ranks stopped touching this rank's memory (or `grace`
// passed: then it names those still active).
Status once_peers_quiet(transport::Transport& transport, const Status& failure,
                        std::chrono::milliseconds grace) {
  const std::string active = transport.wait_peers_quiet(grace);
  if (active.empty()) {
    return failure;
  }
  return Status(failure.code(), failure.message() + " (rank(s) " + active +
                                    " were still active when this call returned)");
}

}  // namespace

PeerAccess::PeerAccess(transport::Transport& transport, int64_t timeout_ms)
    : transport_(transport), grace_(quiet_grace(timeout_ms)) {
  transport_.set_touching_peers(true);
}

Status PeerAccess::fail(const Status& failure) {
  transport_.set_touching_peers(false);
  return once_peers_quiet(transport_, failure, grace_);
}

Status start_op(transport::Transport& transport, OpHeader& mine, const Status& local,
                std::vector<OpHeader>* all, const transport::Deadline& deadline, const char* what) {
  transport::Proposal proposal;
  proposal.kind = mine.kind == static_cast<int32_t>(OpKind::kDispatch)
                      ? transport::CallKind::kDispatch
                      : transport::CallKind::kCombine;
  proposal.local = local;
  proposal.fields = agreed_fields(mine);
  proposal.payload = &mine;
  proposal.payload_bytes = sizeof(OpHeader);
  all->assign(static_cast<size_t>(transport.world_size()), OpHeader());
  // Every rank reaches the same verdict from the same messages.
  Status verdict = transport::agree(transport, proposal, reinterpret_cast<std::byte*>(all->data()),
                                    deadline, what);
  if (!verdict.ok()) {
    all->clear();
    return verdict;
  }
  // Peers' addresses as this rank reaches them: the same (threads), mapped from their shared
  // regions (processes), or none (without the direct ability: so that a path that would
  // touch them fails at once, also in the in-process test mode that behaves like processes).
  // From here this rank may store into peers' memory: marked before anything else (the
  // caller's PeerAccess takes the mark over), so that a peer failing from now on waits until
  // this rank stopped, or this rank sees the break before its first store.
  transport.set_touching_peers(true);
  Status reached = transport.reach_peers();
  if (!reached.ok()) {
    // The group is broken; the others may already be storing into this rank's buffers.
    all->clear();
    transport.set_touching_peers(false);
    return once_peers_quiet(transport, reached, quiet_grace(deadline.timeout_ms));
  }
  for (size_t r = 0; r < all->size(); ++r) {
    OpHeader& peer = (*all)[r];
    const int rank = static_cast<int>(r);
    peer.src = static_cast<const std::byte*>(transport.peer_address(rank, peer.src));
    peer.dst = static_cast<std::byte*>(transport.peer_address(rank, peer.dst));
    peer.extra_dst = static_cast<std::byte*>(transport.peer_address(rank, peer.extra_dst));
    peer.weights = transport.peer_address(rank, peer.weights);
  }
  return verdict;
}

Status publish_rows(transport::Transport& transport, transport::SharedRegion region,
                    const TensorView& view, const std::byte** at, int64_t* pitch) {
  const int64_t rows = view.shape[0];
  const auto row_bytes = static_cast<size_t>(view.shape[1]) * dtype_size(view.dtype);
  const auto view_pitch = static_cast<size_t>(view.row_pitch_bytes());
  const size_t span = rows == 0 ? 0 : static_cast<size_t>(rows - 1) * view_pitch + row_bytes;
  if (transport.reaches(view.data, span)) {
    *at = static_cast<const std::byte*>(view.data);
    *pitch = static_cast<int64_t>(view_pitch);
    return Status();
  }
  // Not reachable where it is: a packed copy in the shared region.
  Result<std::byte*> copy = transport.shared_region(region, static_cast<size_t>(rows) * row_bytes);
  FUSCO_RETURN_IF_ERROR(copy.status());
  const auto* from = static_cast<const std::byte*>(view.data);
  for (int64_t r = 0; r < rows && row_bytes > 0; ++r) {
    std::memcpy(copy.value() + static_cast<size_t>(r) * row_bytes,
                from + static_cast<size_t>(r) * view_pitch, row_bytes);
  }
  *at = copy.value();
  *pitch = static_cast<int64_t>(row_bytes);
  return Status();
}

}  // namespace fusco::engine
