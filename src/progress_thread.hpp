#pragma once

// The progress thread behind Communicator::dispatch_async / combine_async: one thread per
// communicator, started on first use, running posted calls one after another in the order
// they were posted. Synchronous calls drain it first, so a communicator's collective calls
// always run in the order the caller made them (every rank must see the same order).

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "fusco/work.hpp"

namespace fusco {

struct Work::State {
  std::mutex mutex;
  std::condition_variable finished_cv;
  bool finished = false;
  Status status;
};

class ProgressThread {
 public:
  ProgressThread() = default;
  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;
  /// Finishes the posted calls (each bounded by its timeout), then stops.
  ~ProgressThread();

  /// Runs `call` after every call posted before it; its status completes the returned Work.
  Work post(std::function<Status()> call);
  /// Waits until every posted call has finished.
  void drain();

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable changed_cv_;
  std::deque<std::function<void()>> queue_;
  int unfinished_ = 0;  // queued or running
  bool stopping_ = false;
  std::thread thread_;  // started by the first post
};

}  // namespace fusco
