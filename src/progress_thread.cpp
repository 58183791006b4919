#include "progress_thread.hpp"

#include <utility>

namespace fusco {

Status Work::wait() const {
  if (!state_) {
    return Status();
  }
  std::unique_lock<std::mutex> lock(state_->mutex);
  state_->finished_cv.wait(lock, [this] { return state_->finished; });
  return state_->status;
}

bool Work::done() const {
  if (!state_) {
    return true;
  }
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->finished;
}

ProgressThread::~ProgressThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

Work ProgressThread::post(std::function<Status()> call) {
  auto state = std::make_shared<Work::State>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back([state, call = std::move(call)] {
      Status status = call();
      {
        std::lock_guard<std::mutex> done(state->mutex);
        state->status = std::move(status);
        state->finished = true;
      }
      state->finished_cv.notify_all();
    });
    ++unfinished_;
    if (!thread_.joinable()) {
      thread_ = std::thread([this] { loop(); });
    }
  }
  changed_cv_.notify_all();
  return Work(std::move(state));
}

void ProgressThread::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_cv_.wait(lock, [this] { return unfinished_ == 0; });
}

void ProgressThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      return;  // stopping, nothing left
    }
    std::function<void()> next = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    next();
    lock.lock();
    --unfinished_;
    changed_cv_.notify_all();
  }
}

}  // namespace fusco
