#pragma once

// The topology a group of processes runs with, from the machine each of its ranks is on.

#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "fusco/topology.hpp"

namespace fusco::bootstrap {

/// `requested` checked against (and, for Topology::kByMachine, derived from) `machines`, the
/// machine of each rank (same string: same machine; one entry per rank).
///  - kByMachine: one node per machine. The machines must hold consecutive ranks, equally many
///    (the last may hold fewer), which is what Topology can express: kUnsupported otherwise,
///    naming the first rank out of place.
///  - explicit (0 or ranks_per_node >= 1): every logical node must lie on one machine
///    (kInvalidArgument naming the node, its ranks and two of its machines); several logical
///    nodes on one machine are fine.
/// Every rank holds the same `machines`, so every rank reaches the same verdict.
Result<Topology> topology_for_machines(const Topology& requested,
                                       const std::vector<std::string>& machines);

}  // namespace fusco::bootstrap
