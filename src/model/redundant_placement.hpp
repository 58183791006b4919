#pragma once

// Where to put redundant copies of hot experts, EPLB style, from observed expert loads: the
// input fusco_plan gives the replica choice when it models "fusco with balancing".

#include <cstdint>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::plan {

/// Starts from the contiguous map of `loads.size()` experts over `world_size` ranks and adds
/// `extra_copies` copies one at a time: the expert with the highest load per copy gets a copy
/// on the rank with the lowest estimated load that does not hold it yet, where a rank's
/// estimated load sums load / copies over the experts it holds (ties: lowest id). Returns the
/// replica lists for ExpertMap::with_replicas (primary first). Errors: E not a multiple of W,
/// negative loads or copies, or more copies than free (expert, rank) places.
Result<std::vector<std::vector<int32_t>>> place_redundant_experts(const std::vector<int64_t>& loads,
                                                                  int world_size,
                                                                  int64_t extra_copies);

}  // namespace fusco::plan
