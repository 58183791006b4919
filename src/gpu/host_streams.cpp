#include "gpu/host_streams.hpp"

#include <utility>

namespace fusco::gpu {

void HostLock::lock() {
  std::unique_lock<std::mutex> guard(mutex_);
  const std::thread::id me = std::this_thread::get_id();
  if (owner_ == me) {
    ++depth_;
    return;
  }
  changed_.wait(guard, [this] { return depth_ == 0; });
  owner_ = me;
  depth_ = 1;
}

void HostLock::unlock() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (--depth_ == 0) {
    owner_ = std::thread::id();
    changed_.notify_all();
  }
}

bool HostLock::wait_for_change(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> guard(mutex_);
  const int depth = depth_;
  depth_ = 0;
  owner_ = std::thread::id();
  changed_.notify_all();
  // Woken by a release of the lock (every change is made under it), or by the deadline.
  const bool in_time = changed_.wait_until(guard, deadline) == std::cv_status::no_timeout;
  changed_.wait(guard, [this] { return depth_ == 0; });
  owner_ = std::this_thread::get_id();
  depth_ = depth;
  return in_time || std::chrono::steady_clock::now() < deadline;
}

HostLock& host_streams_lock() {
  static HostLock lock;
  return lock;
}

void HostStream::enqueue(std::function<void()> work) {
  work_.push_back(std::move(work));
  ++queued_;
}

void HostStream::run_until(uint64_t end) {
  const std::thread::id me = std::this_thread::get_id();
  while (done_ < end) {
    if (runner_ == me) return;           // forced from inside its own work: see the header
    if (runner_ != std::thread::id()) {  // another thread runs this stream's work
      host_streams_lock().wait_for_change(std::chrono::steady_clock::now() + std::chrono::hours(1));
      continue;
    }
    if (work_.empty()) return;
    // Taken before it runs: a wait inside it may force this very stream again.
    std::function<void()> next = std::move(work_.front());
    work_.pop_front();
    runner_ = me;
    next();
    runner_ = std::thread::id();
    ++done_;
  }
}

bool wait_for_peer(const std::function<bool()>& ready, const std::function<HostEvent()>& peer_work,
                   std::chrono::steady_clock::time_point deadline) {
  while (!ready()) {
    const HostEvent where = peer_work();
    if (where.stream != nullptr && where.stream->done() < where.position) {
      where.stream->run_until(where.position);
      // Not run only where it runs on this thread already (a cycle): the deadline ends that.
      if (where.stream->done() >= where.position) continue;
    }
    if (!host_streams_lock().wait_for_change(deadline)) return ready();
  }
  return true;
}

}  // namespace fusco::gpu
