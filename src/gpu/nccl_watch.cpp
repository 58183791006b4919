#include "gpu/nccl_watch.hpp"

#include <chrono>
#include <thread>
#include <utility>

namespace fusco::gpu {

Result<StreamMarker> StreamMarker::record(const DeviceOps& ops, cudaStream_t stream,
                                          const std::string& what) {
  cudaEvent_t event = nullptr;
  FUSCO_RETURN_IF_ERROR(ops.create_event(&event));
  StreamMarker marker(ops, event);
  FUSCO_RETURN_IF_ERROR(ops.record(event, stream, what.c_str()));
  return marker;
}

StreamMarker::StreamMarker(StreamMarker&& other) noexcept
    : ops_(other.ops_), event_(std::exchange(other.event_, nullptr)) {}

StreamMarker& StreamMarker::operator=(StreamMarker&& other) noexcept {
  if (this != &other) {
    if (event_ != nullptr) ops_->destroy_event(event_);
    ops_ = other.ops_;
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

StreamMarker::~StreamMarker() {
  if (event_ != nullptr) ops_->destroy_event(event_);
}

bool StreamMarker::reached() const { return event_ == nullptr || ops_->reached(event_); }

Status NcclWatch::mark(cudaStream_t stream, const std::string& what, std::vector<int> peers,
                       int64_t timeout_ms) {
  Result<StreamMarker> marker =
      StreamMarker::record(nccl_->device(), stream, what + ": marking the stream");
  FUSCO_RETURN_IF_ERROR(marker.status());
  steps_.add(std::move(marker).value(), what, std::move(peers), timeout_ms, core::StepClock::now());
  return Status();
}

Status NcclWatch::fail(Status why) {
  if (fault_.ok()) {
    fault_ = std::move(why);
    if (comm_ != nullptr && *comm_ != nullptr) {
      nccl_->abort(*comm_);  // ends the GPU's waits in NCCL: the stream moves on
      *comm_ = nullptr;
    }
    steps_.clear();
  }
  return fault_;
}

Status NcclWatch::check() {
  if (!fault_.ok()) return fault_;
  if (const auto* late = steps_.overdue(core::StepClock::now())) {
    return fail(core::overdue_status(rank_, *late));
  }
  std::string message;
  const ncclResult_t async =
      comm_ != nullptr && *comm_ != nullptr ? nccl_->async_error(*comm_, &message) : ncclSuccess;
  if (async != ncclSuccess && async != ncclInProgress) {
    return fail(Status(StatusCode::kAborted,
                       "rank " + std::to_string(rank_) + ": NCCL reported " + message +
                           " during the exchanges with rank(s) " +
                           core::rank_list(steps_.oldest() != nullptr ? steps_.oldest()->peers
                                                                      : std::vector<int>{}) +
                           "; the NCCL communicator was aborted and the NcclCommunicator must "
                           "be recreated"));
  }
  return Status();
}

Status NcclWatch::wait(cudaStream_t stream, int64_t timeout_ms, const std::string& what) {
  const auto start = core::StepClock::now();
  const auto deadline = start + std::chrono::milliseconds(timeout_ms);
  // Yields for the first 2 ms (a call's end is seen within microseconds, as by a blocking
  // synchronisation), then sleeps between polls.
  const auto spin_until = start + std::chrono::milliseconds(2);
  while (true) {
    FUSCO_RETURN_IF_ERROR(check());
    Result<bool> idle = nccl_->device().idle(stream, what);
    if (!idle.ok() || idle.value()) return idle.status();
    const auto now = core::StepClock::now();
    if (now >= deadline) {
      return fail(Status(StatusCode::kTimeout,
                         "rank " + std::to_string(rank_) + ": " + what + " did not end within " +
                             std::to_string(timeout_ms) +
                             " ms; the NCCL communicator was aborted and the NcclCommunicator "
                             "must be recreated"));
    }
    if (now < spin_until) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace fusco::gpu
