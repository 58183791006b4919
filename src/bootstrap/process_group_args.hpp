#pragma once

// Checks shared by the factories of process groups (shared memory, UCX).

#include <cstdint>
#include <string>

#include "fusco/status.hpp"

namespace fusco::bootstrap {

/// `rank` in [0, world) (topology.world_size) and `timeout_ms` in [1, 86400000].
inline Status check_rank_and_timeout(int rank, int world, int64_t timeout_ms) {
  if (rank < 0 || rank >= world) {
    return Status(StatusCode::kInvalidArgument, "rank = " + std::to_string(rank) +
                                                    " is outside [0, " + std::to_string(world) +
                                                    ") (topology.world_size)");
  }
  if (timeout_ms < 1 || timeout_ms > 86400000) {
    return Status(StatusCode::kInvalidArgument,
                  "timeout_ms = " + std::to_string(timeout_ms) + " is outside [1, 86400000]");
  }
  return Status();
}

}  // namespace fusco::bootstrap
