#pragma once

#include <memory>

#include "fusco/status.hpp"

namespace fusco {

/// A dispatch or combine in flight (Communicator::dispatch_async / combine_async). The call
/// runs on the communicator's progress thread while the caller computes; its tensors must stay
/// alive and untouched until wait() returns.
class Work {
 public:
  /// A finished work whose status is ok (what a default-constructed handle waits for).
  Work() = default;

  /// Blocks until the call has finished and returns its status (the same on every call). The
  /// call itself is bounded by PlanOptions::timeout_ms, so this wait is bounded too.
  Status wait() const;
  /// True once the call has finished; wait() then returns at once.
  bool done() const;

  struct State;
  explicit Work(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

}  // namespace fusco
