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
  free_.wait(guard, [this] { return depth_ == 0; });
  owner_ = me;
  depth_ = 1;
}

void HostLock::unlock() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (--depth_ == 0) {
    owner_ = std::thread::id();
    touched_ = false;
    ++generation_;
    free_.notify_one();
    changed_.notify_all();
  }
}

bool HostLock::wait_for_change(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> guard(mutex_);
  const int depth = depth_;
  if (touched_) {
    ++generation_;
    changed_.notify_all();
    touched_ = false;
  }
  const uint64_t seen = generation_;
  depth_ = 0;
  owner_ = std::thread::id();
  free_.notify_one();
  const bool changed = changed_.wait_until(guard, deadline, [&] { return generation_ != seen; });
  free_.wait(guard, [this] { return depth_ == 0; });
  owner_ = std::this_thread::get_id();
  depth_ = depth;
  return changed || std::chrono::steady_clock::now() < deadline;
}

HostLock& host_streams_lock() {
  static HostLock lock;
  return lock;
}

void HostStream::enqueue(std::function<void()> work) {
  work_.push_back(std::move(work));
  ++queued_;
  host_streams_lock().touch();
}

bool HostStream::run_until(uint64_t end, std::chrono::steady_clock::time_point deadline) {
  const std::thread::id me = std::this_thread::get_id();
  while (done_ < end) {
    if (runner_ == me) return false;     // forced from inside its own work: see the header
    if (runner_ != std::thread::id()) {  // another thread runs this stream's work
      if (!host_streams_lock().wait_for_change(deadline)) return false;
      continue;
    }
    if (work_.empty()) return false;
    // Taken before it runs: a wait inside it may force this very stream again.
    std::function<void()> next = std::move(work_.front());
    work_.pop_front();
    runner_ = me;
    host_streams_lock().touch();  // the work changes what others wait for
    next();
    runner_ = std::thread::id();
    ++done_;
    host_streams_lock().touch();
  }
  return true;
}

bool wait_for_peer(const std::function<bool()>& ready, const std::function<HostEvent()>& peer_work,
                   std::chrono::steady_clock::time_point deadline) {
  while (!ready()) {
    const HostEvent where = peer_work();
    if (where.stream != nullptr && where.stream->done() < where.position &&
        where.stream->run_until(where.position, deadline)) {
      continue;
    }
    // Not queued yet, or not run (a cycle, or another thread runs it): wait for a change.
    if (std::chrono::steady_clock::now() >= deadline ||
        !host_streams_lock().wait_for_change(deadline)) {
      return ready();
    }
  }
  return true;
}

}  // namespace fusco::gpu
