#pragma once

#include <chrono>
#include <cstdint>

namespace fusco::transport {

using Clock = std::chrono::steady_clock;

/// The moment a bounded wait gives up, with the budget it was made from (for messages).
struct Deadline {
  Clock::time_point at;
  int64_t timeout_ms = 0;

  static Deadline after_ms(int64_t timeout_ms) {
    return Deadline{Clock::now() + std::chrono::milliseconds(timeout_ms), timeout_ms};
  }
};

}  // namespace fusco::transport
