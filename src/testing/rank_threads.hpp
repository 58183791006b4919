#pragma once

// Runs one function per rank, each on its own thread, as a collective call requires.

#include <functional>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::testing {

/// Calls fn(rank) for rank in [0, world_size) concurrently and returns each rank's status.
std::vector<Status> run_ranks(int world_size, const std::function<Status(int rank)>& fn);

/// The first failed status of `statuses`, or ok.
Status first_error(const std::vector<Status>& statuses);

}  // namespace fusco::testing
