#include "fusco/topology.hpp"

#include <string>

namespace fusco {

Status Topology::validate() const {
  if (world_size < 1) {
    return Status(StatusCode::kInvalidArgument,
                  "topology.world_size must be >= 1, got " + std::to_string(world_size));
  }
  if (ranks_per_node < 0 && ranks_per_node != kByMachine) {
    return Status(StatusCode::kInvalidArgument,
                  "topology.ranks_per_node must be >= 0 (0 = one node) or Topology::kByMachine "
                  "(-1), got " +
                      std::to_string(ranks_per_node));
  }
  return Status();
}

}  // namespace fusco
