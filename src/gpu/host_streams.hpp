#pragma once

// The host backend's streams and events (gpu/device_ops.hpp): a stream is a queue of work
// that runs only when forced — by a host wait for the stream, or by work of another stream
// that waits for an event recorded on it, or by a peer rank's barrier or exchange that needs
// this stream's arrival (gpu/host_nccl_world.hpp) — on the thread that forces it. Work
// therefore runs as late as the recorded orders allow, and never earlier than a GPU would
// run it.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace fusco::gpu {

/// The one lock of the host backend's streams and events, held recursively by the thread
/// that enqueues or runs work. A piece of work that waits for another rank (a barrier, an
/// exchange) releases it fully while it waits, so that the other rank's thread can enqueue.
class HostLock {
 public:
  void lock();
  void unlock();
  /// Releases the lock (whatever the depth), waits until another thread changed something
  /// under it (held it and let it go: every change is made under it) or until `deadline`,
  /// and takes it back at the same depth. False once the deadline has passed.
  bool wait_for_change(std::chrono::steady_clock::time_point deadline);
  /// Notes that the holder changed something others may wait for (queued work, ran work):
  /// its next wait_for_change wakes the waiters. (A holder that only looked wakes nobody, so
  /// two waiters never wake each other in turn.)
  void touch() { touched_ = true; }

 private:
  std::mutex mutex_;
  std::condition_variable free_;     ///< The lock was let go.
  std::condition_variable changed_;  ///< A holder let it go (generation_ moved).
  std::thread::id owner_;
  int depth_ = 0;
  uint64_t generation_ = 0;  ///< Changes seen by waiters: releases after a change.
  bool touched_ = false;     ///< The holder changed something since it took the lock.
};

HostLock& host_streams_lock();

class HostStream : public std::enable_shared_from_this<HostStream> {
 public:
  /// Queues `work` (position queued() afterwards). Under host_streams_lock().
  void enqueue(std::function<void()> work);
  /// Runs the queued work up to and including position `end` (positions count from 1), on
  /// this thread; work another thread is running is waited for, until `deadline`. Work running
  /// on this thread already (a wait inside it that forces its own stream past itself: a
  /// cycle, which a GPU would not leave either) is not waited for. False where it stopped
  /// short. Under host_streams_lock().
  bool run_until(uint64_t end, std::chrono::steady_clock::time_point deadline = forever());
  /// Runs everything queued so far.
  void run_all() { run_until(queued_); }
  /// A deadline an hour away: waits that other bounds end first.
  static std::chrono::steady_clock::time_point forever() {
    return std::chrono::steady_clock::now() + std::chrono::hours(1);
  }
  uint64_t queued() const { return queued_; }
  /// Positions whose work has ended.
  uint64_t done() const { return done_; }

 private:
  std::deque<std::function<void()>> work_;
  uint64_t queued_ = 0;
  uint64_t done_ = 0;
  std::thread::id runner_;  ///< The thread running work of this stream (none: idle).
};

/// What an event marks: a stream's position (none before its first record).
struct HostEvent {
  std::shared_ptr<HostStream> stream;
  uint64_t position = 0;
};

/// How work of one rank waits for another rank's work (a barrier arrival, a message): until
/// `ready()` or `deadline`. Once `peer_work()` names where the other rank queued the work it
/// needs, that stream runs up to it; until then the lock is released so that the other
/// rank's thread can queue it. Under host_streams_lock(); false at the deadline.
bool wait_for_peer(const std::function<bool()>& ready, const std::function<HostEvent()>& peer_work,
                   std::chrono::steady_clock::time_point deadline);

}  // namespace fusco::gpu
