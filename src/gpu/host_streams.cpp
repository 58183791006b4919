#include "gpu/host_streams.hpp"

#include <utility>

namespace fusco::gpu {

void HostStream::enqueue(std::function<void()> work) {
  work_.push_back(std::move(work));
  ++queued_;
}

void HostStream::run_until(uint64_t end) {
  // The work taken before it runs: a wait inside it may force this very stream again (up to
  // an earlier position, which has run), never past it (events mark work queued earlier).
  while (ran_ < end && !work_.empty()) {
    std::function<void()> next = std::move(work_.front());
    work_.pop_front();
    ++ran_;
    next();
  }
}

std::recursive_mutex& host_streams_lock() {
  static std::recursive_mutex lock;
  return lock;
}

}  // namespace fusco::gpu
