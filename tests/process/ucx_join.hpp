#pragma once

// UCX groups of forked children without a launcher: the bootstrap's byte exchange goes
// through a shared-memory group (any collective exchange would do; /dev/shm is shared even
// by children on simulated machines).

#include <cstdint>
#include <string>

#include "fusco/communicator.hpp"

namespace fusco::testing {

/// Communicator::create_ucx for rank `rank` of `topology.world_size`, bootstrapped through a
/// shared-memory group called `name` (fresh per group); every wait is bounded by `timeout_ms`.
Result<Communicator> join_ucx_through_shm(const std::string& name, int rank,
                                          const Topology& topology, int64_t timeout_ms);

}  // namespace fusco::testing
