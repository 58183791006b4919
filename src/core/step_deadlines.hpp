#pragma once

// Steps enqueued on one in-order stream (a GPU stream's ncclSend/ncclRecv exchanges) and the
// time each may take. The host cannot interrupt a GPU wait, but it can see that a step is
// overdue — its marker not reached past its deadline — name it and its peers, and abort the
// NCCL communicator that holds the GPU in it. Markers of one stream are reached in order, so
// the oldest pending step is the only one that can be the first overdue. Host code, templated
// on the marker (anything movable with `bool reached()`) so the CPU tests drive it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::core {

using StepClock = std::chrono::steady_clock;

template <typename Marker>
class StepDeadlines {
 public:
  struct Step {
    Marker marker;
    std::string what;        ///< e.g. "dispatch: ncclSend/ncclRecv"
    std::vector<int> peers;  ///< the ranks it exchanges rows with
    int64_t timeout_ms = 0;
    StepClock::time_point deadline;
  };

  /// A step enqueued at `now` after every earlier one; it must be reached within timeout_ms.
  void add(Marker marker, std::string what, std::vector<int> peers, int64_t timeout_ms,
           StepClock::time_point now) {
    steps_.push_back(Step{std::move(marker), std::move(what), std::move(peers), timeout_ms,
                          now + std::chrono::milliseconds(timeout_ms)});
  }

  /// Forgets the steps reached (in order: the first pending one ends the scan) and returns
  /// the oldest pending step if it is past its deadline at `now`, else nullptr.
  const Step* overdue(StepClock::time_point now) {
    while (!steps_.empty() && steps_.front().marker.reached()) {
      steps_.pop_front();
    }
    if (steps_.empty() || now < steps_.front().deadline) {
      return nullptr;
    }
    return &steps_.front();
  }

  /// The oldest step not yet seen reached, or nullptr.
  const Step* oldest() const { return steps_.empty() ? nullptr : &steps_.front(); }

  size_t pending() const { return steps_.size(); }

  void clear() { steps_.clear(); }

 private:
  std::deque<Step> steps_;
};

/// "1, 3" for {1, 3}; "none" for no peers.
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string text;
  for (const int r : ranks) {
    text += (text.empty() ? "" : ", ") + std::to_string(r);
  }
  return text.empty() ? "none" : text;
}

/// The error for `step`, overdue on rank `rank`: kTimeout naming the step, its peers and its
/// timeout.
template <typename Step>
Status overdue_status(int rank, const Step& step) {
  return Status(StatusCode::kTimeout,
                "rank " + std::to_string(rank) + ": " + step.what + " with rank(s) " +
                    rank_list(step.peers) + " did not complete within " +
                    std::to_string(step.timeout_ms) +
                    " ms (PlanOptions::timeout_ms): a peer died, hangs or skipped the call; the "
                    "NCCL communicator was aborted and the NcclCommunicator must be recreated");
}

}  // namespace fusco::core
