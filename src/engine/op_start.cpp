#include "engine/op_start.hpp"

#include <algorithm>
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

}  // namespace

PeerAccess::PeerAccess(transport::Transport& transport, int64_t timeout_ms)
    : transport_(transport),
      // Live ranks notice a broken group within one progress step (about one chunk).
      grace_(std::chrono::milliseconds(std::min<int64_t>(timeout_ms, 1000))) {
  transport_.set_touching_peers(true);
}

Status PeerAccess::fail(const Status& failure) {
  transport_.set_touching_peers(false);
  const std::string active = transport_.wait_peers_quiet(grace_);
  if (active.empty()) {
    return failure;
  }
  return Status(failure.code(), failure.message() + " (rank(s) " + active +
                                    " were still active when this call returned)");
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
  // Without the direct ability a peer's addresses mean nothing here (another process): drop
  // them, so that a path that would touch them fails at once, also in the in-process test
  // mode that behaves like processes.
  if (!transport.direct_access()) {
    for (size_t r = 0; r < all->size(); ++r) {
      if (static_cast<int>(r) == transport.rank()) continue;
      OpHeader& peer = (*all)[r];
      peer.src = nullptr;
      peer.dst = nullptr;
      peer.extra_dst = nullptr;
      peer.weights = nullptr;
    }
  }
  return verdict;
}

}  // namespace fusco::engine
