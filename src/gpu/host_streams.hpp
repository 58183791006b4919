#pragma once

// The host backend's streams and events (gpu/device_ops.hpp): a stream is a queue of work
// that runs only when forced — by a host wait for the stream, or by work of another stream
// that waits for an event recorded on it — on the thread that forces it. Work therefore runs
// as late as the recorded orders allow, and never earlier than a GPU would run it.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace fusco::gpu {

class HostStream : public std::enable_shared_from_this<HostStream> {
 public:
  /// Queues `work` (position queued() afterwards).
  void enqueue(std::function<void()> work);
  /// Runs the queued work up to and including position `end` (positions count from 1).
  void run_until(uint64_t end);
  /// Runs everything queued so far.
  void run_all() { run_until(queued_); }
  uint64_t queued() const { return queued_; }

 private:
  std::deque<std::function<void()>> work_;
  uint64_t queued_ = 0;
  uint64_t ran_ = 0;
};

/// What an event marks: a stream's position (none before its first record).
struct HostEvent {
  std::shared_ptr<HostStream> stream;
  uint64_t position = 0;
};

/// The one lock of the host backend's streams and events: work runs under it (forcing a
/// stream from several threads runs each piece of work once, in queue order).
std::recursive_mutex& host_streams_lock();

}  // namespace fusco::gpu
