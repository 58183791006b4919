#include "engine/op_start.hpp"

#include <algorithm>
#include <string>

#include "fusco/dtype.hpp"

namespace fusco::engine {

namespace {

Status check_headers(const std::vector<OpHeader>& headers, const Status& local, const char* what) {
  if (!local.ok()) {
    return local;
  }
  for (size_t r = 0; r < headers.size(); ++r) {
    if (headers[r].ok == 0) {
      return Status(StatusCode::kInvalidArgument, "rank " + std::to_string(r) +
                                                      " rejected its arguments to " + what +
                                                      " (see its error); nothing was sent");
    }
  }
  const OpHeader& first = headers[0];
  for (size_t r = 1; r < headers.size(); ++r) {
    const OpHeader& other = headers[r];
    const std::string where = " (rank 0 vs rank " + std::to_string(r) + ")";
    if (other.kind != first.kind) {
      return Status(StatusCode::kMismatch, std::string("ranks are in different collectives: ") +
                                               (first.kind == 1 ? "dispatch" : "combine") + " vs " +
                                               (other.kind == 1 ? "dispatch" : "combine") + where);
    }
    if (other.group_id != first.group_id || other.plan_sequence != first.plan_sequence) {
      return Status(StatusCode::kMismatch, "ranks use different plans: plan #" +
                                               std::to_string(first.plan_sequence) + " vs plan #" +
                                               std::to_string(other.plan_sequence) + where);
    }
    if (other.hidden != first.hidden) {
      return Status(StatusCode::kMismatch,
                    "hidden size differs across ranks: " + std::to_string(first.hidden) + " vs " +
                        std::to_string(other.hidden) + where);
    }
    if (other.extra_hidden != first.extra_hidden || other.extra_dtype != first.extra_dtype) {
      auto text = [](const OpHeader& h) {
        return h.extra_hidden < 0 ? std::string("none")
                                  : std::to_string(h.extra_hidden) + " x " +
                                        dtype_name(static_cast<DType>(h.extra_dtype));
      };
      return Status(StatusCode::kMismatch, "the companion tensor (extra) differs across ranks: " +
                                               text(first) + " vs " + text(other) + where);
    }
    if (other.dtype != first.dtype) {
      return Status(StatusCode::kMismatch, std::string("dtype differs across ranks: ") +
                                               dtype_name(static_cast<DType>(first.dtype)) +
                                               " vs " +
                                               dtype_name(static_cast<DType>(other.dtype)) + where);
    }
  }
  return Status();
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
  mine.ok = local.ok() ? 1 : 0;
  all->assign(static_cast<size_t>(transport.world_size()), OpHeader());
  FUSCO_RETURN_IF_ERROR(transport.allgather(
      &mine, sizeof(OpHeader), reinterpret_cast<std::byte*>(all->data()), deadline, what));
  // Every rank reaches the same verdict from the same headers.
  Status verdict = check_headers(*all, local, what);
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
